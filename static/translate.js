'use strict';
// The translate page (after common.js): translate without reloading, a live
// character counter, example chips, top-k bounded by the beam, a spinner with
// elapsed time, inline errors, copy buttons. Every feature also works without
// this file (the form posts and the server renders the same results).
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const form = $('#translate');
  if (!form) return;
  const text = $('#text');
  const targetField = $('#target');
  const foldField = $('#fold');
  const counter = $('#counter');
  const beam = $('#beam');
  const nBest = $('#n_best');
  const status = $('#status');
  const statusText = $('#status-text');
  const error = $('#error');
  const results = $('#results');
  const max = Number(counter.dataset.max);

  // The server counts Unicode code points; so does the spread operator.
  const length = (s) => [...s].length;

  const updateCounter = () => {
    const n = length(text.value);
    counter.textContent = `${n} / ${max} characters`;
    counter.classList.toggle('over', n > max);
  };

  const boundTopK = () => boundTopKByBeam(beam, nBest);

  const showError = (message) => {
    error.textContent = message || '';
    error.hidden = !message;
  };

  // Screen readers hear the start and the end of a request, not every tick
  // of the visible timer.
  const announce = $('#announce');
  const say = (words) => { announce.textContent = words; };

  let timer = null;
  const submitButton = $('#submit');
  const startSpinner = () => {
    const started = performance.now();
    status.hidden = false;
    // The button the eye is on says it is working.
    submitButton.textContent = 'Translating…';
    submitButton.setAttribute('aria-busy', 'true');
    submitButton.classList.add('busy');
    results.setAttribute('aria-busy', 'true');
    say('Translating…');
    let warned = false;
    const tick = () => {
      const s = (performance.now() - started) / 1000;
      statusText.textContent = s < 4
        ? `Translating… ${s.toFixed(1)} s`
        : `Translating… ${s.toFixed(0)} s. The model may be starting up: the first request after a quiet period can take 10–30 s.`;
      if (s >= 4 && !warned) {
        warned = true;
        say('Still translating. The model may be starting up: this can take up to 30 seconds.');
      }
    };
    tick();
    timer = setInterval(tick, 200);
  };
  const stopSpinner = () => {
    clearInterval(timer);
    status.hidden = true;
    submitButton.textContent = 'Translate';
    submitButton.removeAttribute('aria-busy');
    submitButton.classList.remove('busy');
    results.removeAttribute('aria-busy');
  };

  // Results on screen that are not the current input's: dimmed, labelled.
  const markStale = (words) => {
    if (!results.querySelector('.results-head')) return;
    results.classList.add('stale');
    let label = results.querySelector('.stale-label');
    if (!label) {
      label = document.createElement('p');
      label.className = 'stale-label';
      results.prepend(label);
    }
    label.textContent = words;
  };

  // The server words its errors for people (text/plain, same status); a
  // JSON error is one the request itself caused, shown as its message says.
  const describe = async (response) => {
    const type = response.headers.get('content-type') || '';
    let text = '';
    try { text = await response.text(); } catch (_) { /* the connection dropped */ }
    if (type.startsWith('text/plain') && text.trim()) return text.trim();
    try {
      const message = JSON.parse(text).error.message;
      if (message) return message.charAt(0).toUpperCase() + message.slice(1);
    } catch (_) { /* not our JSON */ }
    return `The server answered with status ${response.status}. Please try again.`;
  };

  const enhance = () => {
    for (const b of results.querySelectorAll('[data-copy], #copy-link, .heatmap-tools, .atom-pick')) b.hidden = false;
    for (const v of results.querySelectorAll('.atom-view')) v.classList.add('pointable');
    if (results.heatmapsChanged) results.heatmapsChanged();
  };

  const copy = async (value, button, fallbackSelect) => {
    const label = button.textContent;
    const done = await copyText(value);
    if (done) {
      button.textContent = 'Copied';
    } else {
      // Nothing could write to the clipboard: select the text for Ctrl+C.
      if (fallbackSelect) {
        const range = document.createRange();
        range.selectNodeContents(fallbackSelect);
        const selection = getSelection();
        selection.removeAllRanges();
        selection.addRange(range);
      }
      button.textContent = 'Selected: press Ctrl+C';
    }
    setTimeout(() => { button.textContent = label; }, 2500);
  };

  // The address is the state: each prediction's own address (the one its
  // share link holds, which translates when opened) is pushed, so reload and
  // Back work; the last few are kept in this browser, never on the server.
  const RECENT_KEY = 'translation-front.recent';
  const recentBox = $('#recent');
  const recentList = $('#recent-list');
  const readRecent = () => {
    try {
      return JSON.parse(localStorage.getItem(RECENT_KEY)) || [];
    } catch (_) {
      return [];
    }
  };
  const showRecent = () => {
    const items = readRecent();
    recentBox.hidden = !items.length;
    recentList.replaceChildren(...items.map((r) => {
      const li = document.createElement('li');
      const a = document.createElement('a');
      a.href = r.share;
      a.textContent = r.text;
      li.append(a);
      return li;
    }));
  };
  const remember = () => {
    const head = results.querySelector('.results-head');
    if (!head) return null;
    const share = head.dataset.share;
    const text = new URLSearchParams(share.slice(share.indexOf('?') + 1)).get('text') || '';
    const items = [{ share, text }, ...readRecent().filter((r) => r.share !== share)].slice(0, 10);
    try {
      localStorage.setItem(RECENT_KEY, JSON.stringify(items));
    } catch (_) { /* storage off (private mode): nothing is kept */ }
    showRecent();
    return share;
  };
  $('#recent-clear').addEventListener('click', () => {
    try { localStorage.removeItem(RECENT_KEY); } catch (_) { /* nothing kept */ }
    showRecent();
  });
  // Back and Forward: the page of that address, as the server renders it. A
  // move between fragments of the same address (the top-k grid's links to
  // their cards) also fires popstate: that one stays on the page.
  const here = () => location.pathname + location.search;
  let shownAddress = here();
  const go = (address) => {
    history.pushState(null, '', address);
    shownAddress = here();
  };
  window.addEventListener('popstate', () => {
    if (here() !== shownAddress) location.reload();
  });

  let inflight = null;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = text.value;
    if (!value.trim()) {
      showError('Type something to translate first.');
      text.focus();
      return;
    }
    if (length(value) > max) {
      showError(`The input has ${length(value)} characters; the limit is ${max}.`);
      text.focus();
      return;
    }
    if (inflight) inflight.abort();
    const controller = new AbortController();
    inflight = controller;
    showError(null);
    markStale('Translating your new input: the results below are for the previous one.');
    startSpinner();
    try {
      const response = await fetch('/api/v1/translate', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/html' },
        body: JSON.stringify({
          text: value,
          beam: Number(beam.value),
          n_best: Number(nBest.value),
          target: targetField && targetField.value.trim() ? targetField.value : undefined,
          fold_duplicates: foldField ? foldField.checked : undefined,
        }),
        signal: controller.signal,
      });
      if (response.ok) {
        results.innerHTML = await response.text();
        results.classList.remove('stale');
        enhance();
        const share = remember();
        if (share && here() !== share) go(share);
        const n = results.querySelectorAll('.prediction').length;
        say(`${n} result${n === 1 ? '' : 's'} ready.`);
        // The results in view, and focus on their heading (not left on the
        // button, which is now above them).
        const heading = results.querySelector('#results-title');
        if (heading) {
          heading.setAttribute('tabindex', '-1');
          heading.focus({ preventScroll: true });
        }
        results.scrollIntoView({ block: 'start', behavior: 'smooth' });
      } else {
        showError(await describe(response));
        markStale('The results below are for an earlier input, not for the one above.');
      }
    } catch (err) {
      if (err.name !== 'AbortError') {
        showError('The server could not be reached. Check the connection and try again.');
        markStale('The results below are for an earlier input, not for the one above.');
      }
    } finally {
      if (inflight === controller) {
        inflight = null;
        stopSpinner();
      }
    }
  });

  text.addEventListener('input', updateCounter);
  text.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  beam.addEventListener('change', boundTopK);

  form.addEventListener('click', (event) => {
    const chip = event.target.closest('button.chip');
    if (!chip) return;
    event.preventDefault();
    text.value = chip.value;
    updateCounter();
    text.focus();
  });

  $('#clear').addEventListener('click', (event) => {
    event.preventDefault();
    if (location.search) go('/');
    text.value = '';
    results.innerHTML = '';
    results.classList.remove('stale');
    showError(null);
    updateCounter();
    text.focus();
  });

  results.addEventListener('click', (event) => {
    const target = event.target.closest('[data-copy], #copy-link');
    if (!target) return;
    if (target.id === 'copy-link') {
      // The link of the results on screen (text, beam, top-k, target), which
      // translates when opened: not whatever the box holds now.
      const share = target.closest('.results-head').dataset.share;
      copy(`${location.origin}${share}`, target, null);
    } else {
      copy(target.dataset.copy, target, target.parentElement.querySelector('code'));
    }
  });
  heatmaps(results);
  // Attention on the atoms: choosing a product atom shows where it looked
  // (the drawings are the server's; their addresses come with the page).
  results.addEventListener('change', (event) => {
    const select = event.target.closest('.atom-choice');
    if (!select) return;
    const view = select.closest('.atom-view');
    const atom = JSON.parse(view.dataset.atoms)[Number(select.value)];
    if (!atom) return;
    const product = view.querySelector('.atom-product');
    const input = view.querySelector('.atom-input');
    product.src = atom.p;
    product.alt = product.alt.replace(/atom \S+ \d+ marked$/, `atom ${atom.l} marked`);
    input.src = atom.i;
    input.alt = `The input, the atoms that atom attended to marked: ${atom.r}`;
    view.querySelector('.atom-label').textContent = atom.l;
    view.querySelector('.atom-readout').textContent = atom.r;
  });
  // Pointing at an atom on the product's drawing (hover, click or tap)
  // chooses it: the drawing's SVG says where RDKit drew each atom (its
  // metadata, drawing-x and drawing-y per atom, numbered from 1).
  const placed = new WeakMap();
  const placesIn = (view) => {
    if (!placed.has(view)) {
      const img = view.querySelector('.atom-product');
      placed.set(view, fetch(img.currentSrc || img.src)
        .then((r) => (r.ok ? r.text() : Promise.reject(new Error(r.statusText))))
        .then((svg) => {
          const doc = new DOMParser().parseFromString(svg, 'image/svg+xml');
          const box = (doc.documentElement.getAttribute('viewBox') || '').split(/\s+/).map(Number);
          const atoms = [...doc.getElementsByTagNameNS('http://www.rdkit.org/xml', 'atom')].map((a) => ({
            index: Number(a.getAttribute('idx')) - 1,
            x: Number(a.getAttribute('drawing-x')),
            y: Number(a.getAttribute('drawing-y')),
          }));
          return box.length === 4 && box[2] > 0 ? { width: box[2], height: box[3], atoms } : null;
        })
        .catch(() => null));
    }
    return placed.get(view);
  };
  let hover = null;
  const pointAt = async (event) => {
    const img = event.target.closest && event.target.closest('.atom-product');
    if (!img) return;
    const view = img.closest('.atom-view');
    const select = view.querySelector('.atom-choice');
    const places = await placesIn(view);
    if (!places || !select) return;
    const rect = img.getBoundingClientRect();
    const x = ((event.clientX - rect.left) * places.width) / rect.width;
    const y = ((event.clientY - rect.top) * places.height) / rect.height;
    let nearest = null;
    let best = (places.width * 0.08) ** 2; // within about a bond's length
    for (const a of places.atoms) {
      const d = (a.x - x) ** 2 + (a.y - y) ** 2;
      if (d < best) [nearest, best] = [a, d];
    }
    if (!nearest || select.value === String(nearest.index)) return;
    if (![...select.options].some((o) => o.value === String(nearest.index))) return;
    select.value = String(nearest.index);
    select.dispatchEvent(new Event('change', { bubbles: true }));
  };
  results.addEventListener('click', pointAt);
  results.addEventListener('pointermove', (event) => {
    if (event.pointerType !== 'mouse') return;
    // Each new atom asks for two drawings: wait until the pointer rests.
    clearTimeout(hover);
    if (!(event.target.closest && event.target.closest('.atom-product'))) return;
    hover = setTimeout(() => pointAt(event), 120);
  });

  // Structures in (SMILES mode): a drawing, a MOL or RXN file opened or
  // pasted. A reaction fills the input with its reactants and reagents and
  // the expected product with its products.
  const fill = (input, products) => {
    text.value = input;
    updateCounter();
    if (products && targetField) {
      targetField.value = products;
      targetField.closest('details').open = true;
    }
    showError(null);
    text.focus();
  };
  // A reaction SMILES from the editor: reactants>reagents>products.
  const fillSmiles = (smiles) => {
    const parts = smiles.split('>');
    if (parts.length === 3) fill([parts[0], parts[1]].filter(Boolean).join('.'), parts[2]);
    else fill(smiles, null);
  };
  const isBlock = (s) => /^\s*\$RXN|M {2}END|V[23]000/.test(s);
  const readBlock = async (block) => {
    try {
      const response = await fetch('/api/v1/structure', { method: 'POST', body: block, headers: { 'Content-Type': 'text/plain' } });
      const body = await response.json();
      if (!response.ok) {
        showError(body.error ? body.error.message : `The file could not be read (HTTP ${response.status}).`);
        return;
      }
      fill(body.smiles, body.products || null);
      say(body.kind === 'reaction' ? 'The reaction was read: its reactants are in the input.' : 'The molecule was read as SMILES.');
    } catch (e) {
      showError('The file could not be sent to the server. Check the connection and try again.');
    }
  };
  const tools = $('#structure-tools');
  if (tools) {
    tools.hidden = false;
    text.addEventListener('paste', (event) => {
      const pasted = event.clipboardData && event.clipboardData.getData('text/plain');
      if (!pasted || !isBlock(pasted)) return;
      event.preventDefault();
      readBlock(pasted);
    });
    $('#structure-file').addEventListener('change', async (event) => {
      const file = event.target.files[0];
      event.target.value = '';
      if (!file) return;
      if (file.size > 256 * 1024) {
        showError(`The file has ${file.size} bytes; the limit is 262144.`);
        return;
      }
      readBlock(await file.text());
    });

    const dialog = $('#editor-dialog');
    const frame = $('#editor-frame');
    const use = $('#editor-use');
    const editorError = $('#editor-error');
    const post = (message) => frame.contentWindow.postMessage(message, location.origin);
    const current = () => {
      const input = text.value.trim();
      const product = targetField ? targetField.value.trim() : '';
      return input && product ? `${input}>>${product}` : input;
    };
    let ready = false;
    $('#draw').addEventListener('click', () => {
      editorError.hidden = true;
      // The editor (about 500 kB) is loaded the first time it is opened.
      if (!frame.src) frame.src = frame.dataset.src;
      else if (ready) post({ type: 'editor-set', smiles: current() });
      dialog.showModal();
    });
    window.addEventListener('message', (event) => {
      if (event.origin !== location.origin || event.source !== frame.contentWindow) return;
      const m = event.data || {};
      if (m.type === 'editor-ready') {
        ready = true;
        use.disabled = false;
        post({ type: 'editor-set', smiles: current() });
      } else if (m.type === 'editor-smiles') {
        // An empty reaction drawing is '>>': no atoms, nothing drawn.
        if (typeof m.smiles !== 'string' || !m.smiles.replace(/[>.\s]/g, '')) {
          editorError.textContent = 'Nothing is drawn yet: draw the molecules, or cancel.';
          editorError.hidden = false;
          return;
        }
        dialog.close();
        fillSmiles(m.smiles);
        say('The drawing is in the input.');
      }
    });
    use.addEventListener('click', () => post({ type: 'editor-get' }));
    // A modal dialog gives focus back to the Draw button when it closes.
    $('#editor-cancel').addEventListener('click', () => dialog.close());
  }

  $('#shortcut').hidden = false;
  // Results the server rendered (a link, a reload) are remembered too.
  if (!remember()) showRecent();
  boundTopK();
  updateCounter();
  enhance();
})();
