'use strict';
// Progressive enhancement of the translate page: translate without reloading,
// a live character counter, example chips, top-k bounded by the beam, a spinner
// with elapsed time, inline errors, copy buttons. Every feature also works
// without this file (the form posts and the server renders the same results).
// Top-k can never exceed the beam: options above it are disabled.
function boundTopKByBeam(beam, nBest) {
  const b = Number(beam.value);
  for (const o of nBest.options) o.disabled = Number(o.value) > b;
  if (Number(nBest.value) > b) nBest.value = String(b);
}

// Copies text. navigator.clipboard exists only in secure contexts (HTTPS or
// localhost); over plain HTTP, as a cluster's NodePort serves, the older
// execCommand path still works from a click. False when neither could.
async function copyText(value) {
  if (window.isSecureContext && navigator.clipboard) {
    try {
      await navigator.clipboard.writeText(value);
      return true;
    } catch (_) { /* fall through */ }
  }
  const active = document.activeElement;
  const area = document.createElement('textarea');
  area.value = value;
  area.setAttribute('readonly', '');
  area.className = 'copy-buffer';
  document.body.appendChild(area);
  area.select();
  let ok = false;
  try { ok = document.execCommand('copy'); } catch (_) { ok = false; }
  area.remove();
  if (active && active.focus) active.focus();
  return ok;
}

// Attention heatmaps: the value of a cell under the pointer, at a tap, or at
// the arrow keys' cursor, read out beside the map; "Full size" against
// fit-to-width. The weights come with the map (zlib, base 64) and are
// unpacked on first use.
function heatmaps(root) {
  const state = new WeakMap();
  const weights = async (svg) => {
    let s = state.get(svg);
    if (!s) {
      s = { row: 0, col: 0, data: null };
      state.set(svg, s);
    }
    if (!s.data) {
      const bytes = Uint8Array.from(atob(svg.dataset.values), (ch) => ch.charCodeAt(0));
      const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('deflate'));
      s.data = new DataView(await new Response(stream).arrayBuffer());
    }
    return s;
  };
  const show = async (svg, row, col) => {
    const rows = Number(svg.dataset.rows);
    const cols = Number(svg.dataset.cols);
    row = Math.max(0, Math.min(rows - 1, row));
    col = Math.max(0, Math.min(cols - 1, col));
    const s = await weights(svg);
    s.row = row;
    s.col = col;
    const cell = Number(svg.dataset.cell);
    const cursor = svg.querySelector('.cursor');
    cursor.setAttribute('x', String(Number(svg.dataset.left) + col * cell));
    cursor.setAttribute('y', String(Number(svg.dataset.top) + row * cell));
    cursor.setAttribute('visibility', 'visible');
    const value = s.data.getUint16(2 * (row * cols + col)) / 100;
    const rowText = svg.querySelectorAll('.lbl.row')[row].textContent;
    const colText = svg.querySelectorAll('.lbl.col')[col].textContent;
    const readout = svg.closest('.attention').querySelector('.readout');
    readout.textContent = `Result token ${row + 1} “${rowText}” → input token ${col + 1} “${colText}”: ${value.toFixed(1)}%`;
    if (svg.parentElement.classList.contains('full')) cursor.scrollIntoView({ block: 'nearest', inline: 'nearest' });
  };
  const cellAt = (svg, event) => {
    const matrix = svg.getScreenCTM();
    if (!matrix) return null;
    const p = new DOMPoint(event.clientX, event.clientY).matrixTransform(matrix.inverse());
    const cell = Number(svg.dataset.cell);
    const col = Math.floor((p.x - Number(svg.dataset.left)) / cell);
    const row = Math.floor((p.y - Number(svg.dataset.top)) / cell);
    if (row < 0 || col < 0 || row >= Number(svg.dataset.rows) || col >= Number(svg.dataset.cols)) return null;
    return [row, col];
  };
  const onPointer = (event) => {
    const svg = event.target.closest && event.target.closest('svg.heatmap');
    if (!svg) return;
    const at = cellAt(svg, event);
    if (at) show(svg, at[0], at[1]);
  };
  root.addEventListener('pointermove', (event) => { if (event.pointerType === 'mouse') onPointer(event); });
  root.addEventListener('click', (event) => {
    onPointer(event);
    const zoom = event.target.closest('button.zoom');
    if (!zoom) return;
    const box = zoom.closest('.attention').querySelector('.heatmap-scroll');
    const full = box.classList.toggle('full');
    zoom.setAttribute('aria-pressed', String(full));
  });
  // "Full size" only where the map is shrunk to fit.
  const fit = () => {
    for (const box of root.querySelectorAll('details[open] > .heatmap-scroll')) {
      const svg = box.querySelector('svg.heatmap');
      const zoom = box.parentElement.querySelector('button.zoom');
      zoom.hidden = !box.classList.contains('full') && svg.width.baseVal.value <= box.parentElement.clientWidth;
    }
  };
  root.addEventListener('toggle', fit, true);
  window.addEventListener('resize', fit);
  root.heatmapsChanged = fit;
  root.addEventListener('focusin', (event) => {
    const box = event.target.closest && event.target.closest('.heatmap-scroll');
    if (!box) return;
    const svg = box.querySelector('svg.heatmap');
    const s = state.get(svg);
    show(svg, s ? s.row : 0, s ? s.col : 0);
  });
  root.addEventListener('keydown', (event) => {
    const box = event.target.closest && event.target.closest('.heatmap-scroll');
    if (!box) return;
    const svg = box.querySelector('svg.heatmap');
    const s = state.get(svg) || { row: 0, col: 0 };
    const moves = {
      ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1],
      Home: [0, -Infinity], End: [0, Infinity], PageUp: [-10, 0], PageDown: [10, 0],
    };
    const move = moves[event.key];
    if (!move) return;
    event.preventDefault();
    const clamp = (v) => (Number.isFinite(v) ? v : (v > 0 ? 1e9 : 0));
    show(svg, clamp(s.row + move[0]), clamp(s.col + move[1]));
  });
}

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
  const startSpinner = () => {
    const started = performance.now();
    status.hidden = false;
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
    for (const b of results.querySelectorAll('[data-copy], #copy-link, .heatmap-tools')) b.hidden = false;
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
        const n = results.querySelectorAll('.prediction').length;
        say(`${n} result${n === 1 ? '' : 's'} ready.`);
        // On small screens the results start below the fold: bring them up.
        if (results.getBoundingClientRect().top > window.innerHeight * 0.6) {
          results.scrollIntoView({ block: 'start', behavior: 'smooth' });
        }
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

  $('#shortcut').hidden = false;
  boundTopK();
  updateCounter();
  enhance();
})();

// The batch page: upload, stream NDJSON results with progress, cancel, a paged
// table, the accuracy summary, and a CSV built from what arrived. Without this
// file the form posts and the server answers with the CSV download.
(() => {
  const $ = (sel) => document.querySelector(sel);
  const form = $('#batch');
  if (!form) return;
  const PAGE = 100;
  const beam = $('#beam');
  const nBest = $('#n_best');
  const start = $('#start');
  const cancel = $('#cancel');
  const progress = $('#progress');
  const bar = $('#bar');
  const progressText = $('#progress-text');
  const error = $('#error');
  const summary = $('#summary');
  const tableWrap = $('#table-wrap');
  const tbody = $('#table tbody');
  const pageLabel = $('#page');
  const tools = $('#table-tools');
  const failedOnly = $('#failed-only');
  const failedCount = $('#failed-count');
  const retry = $('#retry');
  const progressCard = $('#progress');
  $('#nojs-hint').hidden = true;
  failedOnly.addEventListener('change', () => { page = 0; draw(); });

  let rows = [];
  let total = 0;
  // The beam and top-k of the run on screen (the selects may change since).
  let runParams = { beam: Number(beam.value), n_best: Number(nBest.value) };
  let page = 0;
  // Rows whose full answer is open (by index).
  const opened = new Set();
  let controller = null;
  let drawPending = false;

  const boundTopK = () => boundTopKByBeam(beam, nBest);
  beam.addEventListener('change', boundTopK);
  boundTopK();

  for (const zone of document.querySelectorAll('.drop')) {
    const input = zone.querySelector('input[type=file]');
    zone.addEventListener('dragover', (e) => { e.preventDefault(); zone.classList.add('over'); });
    zone.addEventListener('dragleave', () => zone.classList.remove('over'));
    zone.addEventListener('drop', (e) => {
      e.preventDefault();
      zone.classList.remove('over');
      if (e.dataTransfer.files.length) input.files = e.dataTransfer.files;
    });
  }

  const showError = (message) => { error.textContent = message || ''; error.hidden = !message; };

  // One click: the demo set, put into the file inputs as if chosen, then started.
  const sample = $('#sample');
  if (sample) {
    sample.hidden = false;
    sample.addEventListener('click', async () => {
      sample.disabled = true;
      try {
        const load = async (name, input) => {
          const response = await fetch(`/static/${name}`);
          if (!response.ok) throw new Error(`${name}: status ${response.status}`);
          const files = new DataTransfer();
          files.items.add(new File([await response.blob()], name, { type: 'text/plain' }));
          input.files = files.files;
        };
        await load('sample-reactions.txt', form.inputs);
        await load('sample-products.txt', form.targets);
        form.requestSubmit();
      } catch (_) {
        showError('The sample data could not be loaded. Try again, or download the two files and choose them.');
      } finally {
        sample.disabled = false;
      }
    });
  }
  const pct = (p) => `${(p * 100).toFixed(1)}%`;
  // A probability with three significant digits (the server's probability_text).
  const prob = (p) => {
    const x = p * 100;
    if (!(x > 0)) return '0%';
    if (x >= 10) return `${x.toFixed(1)}%`;
    if (x >= 1) return `${x.toFixed(2)}%`;
    if (x >= 0.01) return `${x.toFixed(2 - Math.floor(Math.log10(x)))}%`;
    let e = Math.floor(Math.log10(p));
    let m = p / 10 ** e;
    if (m >= 9.95) { m /= 10; e += 1; }
    return `${m.toFixed(1)}e${e}`;
  };
  const duration = (ms) => (ms >= 90000 ? `${Math.round(ms / 60000)} min` : `${Math.max(1, Math.round(ms / 1000))} s`);

  const cell = (tr, text, cls) => {
    const td = document.createElement('td');
    td.textContent = text;
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  };
  const sentence = (m) => {
    const s = String(m || '').trim();
    const t = s.charAt(0).toUpperCase() + s.slice(1);
    return /[.!?]$/.test(t) ? t : `${t}.`;
  };

  const depictUrl = (smiles) => `/api/v1/depict?smiles=${encodeURIComponent(smiles)}`;
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  };
  const figure = (smiles, caption, alt) => {
    const f = el('figure', 'structure');
    const img = el('img');
    img.src = depictUrl(smiles);
    img.width = 300;
    img.height = 220;
    img.alt = `${alt}, ${smiles}`;
    img.loading = 'lazy';
    const cap = el('figcaption', null, `${caption}: `);
    cap.appendChild(el('code', 'smiles', smiles));
    f.append(img, cap);
    return f;
  };
  // A row's full answer: its structures and every prediction.
  const details = (r) => {
    const box = el('div', 'row-details');
    const structures = el('div', 'structures');
    if (r.canonical) structures.appendChild(figure(r.canonical, 'Input, as the model reads it', 'Structure of the input'));
    if (r.target_canonical) structures.appendChild(figure(r.target_canonical, 'Expected product', 'Structure of the expected product'));
    if (structures.childElementCount) box.appendChild(structures);
    if (r.target_error) box.appendChild(el('p', 'invalid-note', `The target cannot be compared: ${r.target_error}.`));
    // The full answer with attention heatmaps, rendered by the server.
    const query = new URLSearchParams({ text: r.input, beam: runParams.beam, n_best: runParams.n_best, run: '1' });
    if (r.target != null && !r.target_error) query.set('target', r.target);
    const open = el('a', 'open-full', 'Open on the translate page, with attention heatmaps');
    open.href = `/?${query}`;
    box.appendChild(open);
    const list = el('ol', 'row-predictions');
    for (const p of r.predictions || []) {
      const li = el('li', 'row-prediction');
      const head = el('div', 'pred-main');
      head.append(el('span', 'rank', `#${p.rank}`), el('code', 'pred-text', p.text), el('span', 'pct', prob(p.probability)));
      if (p.canonical === null) head.appendChild(el('span', 'badge invalid', 'Not a valid molecule'));
      if (r.correct_rank === p.rank) head.appendChild(el('span', 'badge good', 'Expected product'));
      li.appendChild(head);
      if (p.canonical) li.appendChild(figure(p.canonical, 'Canonical', `Structure of prediction ${p.rank}`));
      list.appendChild(li);
    }
    box.appendChild(list);
    return box;
  };

  // The rows shown: all, or the failed ones only.
  const shown = () => (failedOnly.checked ? rows.filter((r) => r.error) : rows);
  const draw = () => {
    drawPending = false;
    const list = shown();
    const pages = Math.max(1, Math.ceil(Math.max(list.length, 1) / PAGE));
    page = Math.min(page, pages - 1);
    tbody.replaceChildren();
    for (const r of list.slice(page * PAGE, page * PAGE + PAGE)) {
      const tr = document.createElement('tr');
      const first = el('td', 'num');
      if (r.error) {
        first.textContent = String(r.index + 1);
      } else {
        const toggle = el('button', 'linkish row-toggle', String(r.index + 1));
        toggle.type = 'button';
        toggle.setAttribute('aria-expanded', String(opened.has(r.index)));
        toggle.setAttribute('aria-label', `Row ${r.index + 1}: ${opened.has(r.index) ? 'hide' : 'show'} every prediction and its structure`);
        toggle.addEventListener('click', () => {
          if (opened.has(r.index)) opened.delete(r.index); else opened.add(r.index);
          draw();
        });
        first.appendChild(toggle);
      }
      tr.appendChild(first);
      cell(tr, r.input, 'mono').title = r.input;
      if (r.error) {
        tr.className = 'failed';
        const why = el('td', 'why');
        why.colSpan = 2;
        why.append(el('strong', null, 'Failed: '), document.createTextNode(sentence(r.error.message)));
        tr.appendChild(why);
      } else {
        const top = r.predictions[0];
        cell(tr, top ? top.text + (top.canonical === null ? ' (not a molecule)' : '') : '', 'mono').title = top ? top.text : '';
        cell(tr, top ? prob(top.probability) : '', 'num');
      }
      cell(tr, r.target == null ? '' : r.target, 'mono').title = r.target || '';
      const verdict = el('td');
      if (r.target != null && !r.error) {
        if (r.correct_rank) {
          verdict.appendChild(el('span', 'mark good', `✓ top-${r.correct_rank}`));
          tr.classList.add('correct');
        } else if (r.target_error) {
          verdict.appendChild(el('span', 'mark', 'target not readable'));
        } else {
          verdict.appendChild(el('span', 'mark bad', `✗ not in top-${r.predictions.length}`));
          tr.classList.add('wrong');
        }
      }
      tr.appendChild(verdict);
      tbody.appendChild(tr);
      if (opened.has(r.index) && !r.error) {
        const dtr = el('tr', 'details');
        const dtd = el('td');
        dtd.colSpan = 6;
        dtd.appendChild(details(r));
        dtr.appendChild(dtd);
        tbody.appendChild(dtr);
      }
    }
    const failed = rows.filter((r) => r.error).length;
    tools.hidden = failed === 0;
    failedCount.textContent = `${failed} failed row${failed === 1 ? '' : 's'}`;
    retry.disabled = controller != null;
    if (!list.length) {
      pageLabel.textContent = rows.length ? 'No rows match' : 'No rows yet';
    } else {
      const of = failedOnly.checked ? `${list.length} failed rows` : `${rows.length} of ${total} rows`;
      pageLabel.textContent = `Page ${page + 1} of ${pages} · ${of}`;
    }
    $('#prev').disabled = page === 0;
    $('#next').disabled = page >= pages - 1;
  };
  const scheduleDraw = () => {
    if (!drawPending) { drawPending = true; requestAnimationFrame(draw); }
  };
  $('#prev').addEventListener('click', () => { page -= 1; draw(); });
  $('#next').addEventListener('click', () => { page += 1; draw(); });

  const showSummary = (s) => {
    const items = [
      ['Rows', s.total],
      ['Translated', s.succeeded],
      ['Failed', s.failed],
      ['Time', duration(s.elapsed_ms)],
    ];
    if (s.top_k_accuracy) s.top_k_accuracy.forEach((a, i) => items.push([`Top-${i + 1} accuracy`, pct(a)]));
    const dl = document.createElement('dl');
    dl.className = 'summary-grid';
    for (const [k, v] of items) {
      const div = document.createElement('div');
      const dt = document.createElement('dt');
      const dd = document.createElement('dd');
      dt.textContent = k;
      dd.textContent = String(v);
      div.append(dt, dd);
      dl.appendChild(div);
    }
    const h = document.createElement('h2');
    h.textContent = 'Summary';
    summary.replaceChildren(h, dl);
    if (s.top_k_accuracy) {
      const note = document.createElement('p');
      note.className = 'hint';
      note.textContent = `Accuracy over the ${s.evaluated} translated rows with a target: a row counts at top-k when one of its first k predictions equals the target.`;
      summary.appendChild(note);
    }
    summary.hidden = false;
  };

  // Rows of a resumed request are numbered from where it resumed; rows of a
  // retry take the places of the failed rows they retry.
  let offset = 0;
  let resumeFrom = null;
  let resumed = 0;
  let runStarted = 0;
  let retrying = null;
  const handle = (msg) => {
    if (msg.type === 'start') {
      if (retrying) {
        progressText.textContent = `Retrying ${retrying.indices.length} failed rows…`;
        return;
      }
      if (!offset) total = msg.total;
      progressText.textContent = `${offset} of ${total} rows…`;
    } else if (msg.type === 'interrupted') {
      resumeFrom = offset + msg.resume_from;
    } else if (msg.type === 'result') {
      if (retrying) {
        msg.index = retrying.indices[msg.index];
        rows[retrying.at.get(msg.index)] = msg;
        scheduleDraw();
        return;
      }
      msg.index += offset;
      rows.push(msg);
      if (rows.length <= (page + 1) * PAGE) scheduleDraw();
    } else if (msg.type === 'progress') {
      if (retrying) {
        bar.value = msg.done / retrying.indices.length;
        progressText.textContent = `Retrying: ${msg.done} of ${retrying.indices.length} rows`;
        return;
      }
      const done = offset + msg.done;
      bar.value = total ? done / total : 1;
      const left = msg.eta_ms == null ? '' : ` · about ${duration(msg.eta_ms)} left`;
      progressText.textContent = `${done} of ${total} rows · ${msg.rate_per_s} rows/s${left}`;
      scheduleDraw();
    } else if (msg.type === 'summary') {
      bar.value = 1;
      // After a resume or a retry the server's summary covers only its part:
      // count all rows.
      const s = resumed || retrying ? summaryOf(rows, performance.now() - runStarted) : msg;
      const note = resumed ? ` (resumed ${resumed} time${resumed > 1 ? 's' : ''} on another server)` : '';
      if (!s.failed) {
        progressText.textContent = `Done: ${s.total} rows in ${duration(s.elapsed_ms)}${note}.`;
      } else if (s.failed === s.total) {
        progressText.textContent = `Finished with errors: all ${s.total} rows failed${note}.`;
      } else {
        progressText.textContent = `Finished with errors: ${s.failed} of ${s.total} rows failed, ${s.succeeded} translated in ${duration(s.elapsed_ms)}${note}.`;
      }
      showSummary(s);
      reportFailures(s);
      scheduleDraw();
    }
  };

  // Failed rows are failures on screen: a red bar, and when nothing was
  // translated an alert with the reason most rows gave.
  const reportFailures = (s) => {
    progressCard.classList.toggle('failed', s.failed > 0);
    if (!s.failed) {
      showError(null);
      return;
    }
    const counts = new Map();
    for (const r of rows) if (r.error) counts.set(r.error.message, (counts.get(r.error.message) || 0) + 1);
    const [reason, n] = [...counts].sort((a, b) => b[1] - a[1])[0];
    const why = counts.size === 1 ? `Every failed row says: ${sentence(reason)}` : `${n} of them say: ${sentence(reason)}`;
    if (s.failed === s.total) {
      showError(`Nothing was translated: all ${s.total} rows failed. ${why} Use “Retry failed rows” to try them again.`);
    } else {
      showError(null);
      const p = el('p', 'hint', `${s.failed} rows failed. ${why} “Failed rows only” shows them; “Retry failed rows” sends them again.`);
      summary.appendChild(p);
    }
  };

  // Sends the failed rows again, with the run's beam and top-k; their answers
  // take their places in the table.
  retry.addEventListener('click', async () => {
    const failedRows = rows.filter((r) => r.error);
    if (!failedRows.length || controller) return;
    retrying = { indices: failedRows.map((r) => r.index), at: new Map(rows.map((r, i) => [r.index, i])) };
    controller = new AbortController();
    running(true);
    showError(null);
    progressCard.classList.remove('failed');
    bar.value = 0;
    runStarted = performance.now();
    try {
      const response = await fetch('/api/v1/translate/batch', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
        body: JSON.stringify({
          inputs: failedRows.map((r) => r.input),
          targets: failedRows[0].target != null ? failedRows.map((r) => r.target) : undefined,
          beam: runParams.beam,
          n_best: runParams.n_best,
        }),
        signal: controller.signal,
      });
      if (!response.ok) {
        showError(await batchError(response));
      } else {
        await stream(response);
      }
    } catch (err) {
      showError(err.name === 'AbortError' ? null : 'The connection was lost during the retry. The rows that arrived are in the table.');
      if (err.name === 'AbortError') progressText.textContent = 'Retry cancelled.';
    } finally {
      retrying = null;
      controller = null;
      running(false);
      draw();
    }
  });

  const batchError = async (response) => {
    let message = `The server answered with status ${response.status}.`;
    try { message = sentence((await response.json()).error.message); } catch (_) { /* keep the status */ }
    return message;
  };

  // The summary of every row received, as the server would write it.
  const summaryOf = (all, elapsed) => {
    const k = runParams.n_best;
    const failed = all.filter((r) => r.error).length;
    const evaluated = all.filter((r) => !r.error && r.target != null && !r.target_error);
    const accuracy = evaluated.length
      ? Array.from({ length: k }, (_, i) => evaluated.filter((r) => r.correct_rank && r.correct_rank <= i + 1).length / evaluated.length)
      : null;
    return { total: all.length, succeeded: all.length - failed, failed, evaluated: evaluated.length, top_k_accuracy: accuracy, elapsed_ms: elapsed };
  };

  // The lines of a file as the server reads them: BOM, CRLF, blank lines at
  // the end dropped.
  const fileLines = async (input) => {
    if (!input.files.length) return null;
    let text = await input.files[0].text();
    if (text.startsWith('\ufeff')) text = text.slice(1);
    const lines = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
    while (lines.length && !lines[lines.length - 1].trim()) lines.pop();
    return lines;
  };

  // Streams one request's NDJSON into handle().
  const stream = async (response) => {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line.trim()) handle(JSON.parse(line));
      }
    }
  };

  // As the server's CSV: RFC 4180 quoting, and a leading ' for cells a
  // spreadsheet would run as a formula.
  const csvField = (v) => {
    let s = v == null ? '' : String(v);
    if (/^[=+\-@\t\r]/.test(s)) s = `'${s}`;
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  $('#download').addEventListener('click', () => {
    // The same columns as the server's CSV (POST /api/v1/translate/batch?format=csv).
    const lines = ['id,source,rank,prediction,canonical,probability,target,correct,error'];
    for (const r of rows) {
      if (r.error) {
        lines.push([r.index, r.input, '', '', '', '', r.target, '', `${r.error.code}: ${r.error.message}`].map(csvField).join(','));
        continue;
      }
      for (const p of r.predictions) {
        const correct = r.target == null || r.target_error ? '' : String(r.correct_rank === p.rank);
        const canonical = p.canonical === undefined ? '' : (p.canonical === null ? '(not a molecule)' : p.canonical);
        lines.push([r.index, r.input, p.rank, p.text, canonical, p.probability.toFixed(6), r.target, correct, r.target_error || ''].map(csvField).join(','));
      }
    }
    const blob = new Blob([lines.join('\r\n') + '\r\n'], { type: 'text/csv' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'translations.csv';
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  });

  const running = (on) => {
    start.disabled = on;
    cancel.hidden = !on;
  };

  cancel.addEventListener('click', () => { if (controller) controller.abort(); });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (!form.inputs.files.length) {
      showError('Choose a file of inputs first.');
      return;
    }
    rows = [];
    total = 0;
    page = 0;
    opened.clear();
    runParams = { beam: Number(beam.value), n_best: Number(nBest.value) };
    progressCard.classList.remove('failed');
    showError(null);
    summary.hidden = true;
    progress.hidden = false;
    tableWrap.hidden = false;
    bar.value = 0;
    progressText.textContent = 'Uploading…';
    draw();
    controller = new AbortController();
    running(true);
    const data = new FormData(form);
    if (!form.targets.files.length) data.delete('targets');
    offset = 0;
    resumeFrom = null;
    resumed = 0;
    runStarted = performance.now();
    try {
      // Kept to resume on another server if this one shuts down mid-way.
      const inputLines = await fileLines(form.inputs);
      const targetLines = await fileLines(form.targets);
      let response = await fetch('/api/v1/translate/batch', {
        method: 'POST',
        body: data,
        headers: { accept: 'application/x-ndjson' },
        signal: controller.signal,
      });
      for (;;) {
        if (!response.ok) {
          showError(await batchError(response));
          if (!rows.length) {
            progress.hidden = true;
            tableWrap.hidden = true;
          }
          return;
        }
        await stream(response);
        if (resumeFrom == null || resumeFrom >= inputLines.length) break;
        // The server was shutting down (a scale-down or a rollout): send the
        // rest; the load balancer picks a server that is staying.
        offset = resumeFrom;
        resumeFrom = null;
        resumed += 1;
        progressText.textContent = `A server was replaced: continuing from row ${offset + 1} on another one…`;
        response = await fetch('/api/v1/translate/batch', {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/x-ndjson' },
          body: JSON.stringify({
            inputs: inputLines.slice(offset),
            targets: targetLines ? targetLines.slice(offset) : undefined,
            beam: runParams.beam,
            n_best: runParams.n_best,
          }),
          signal: controller.signal,
        });
      }
    } catch (err) {
      if (err.name === 'AbortError') {
        progressText.textContent = `Cancelled after ${rows.length} of ${total} rows. The rows that arrived can still be downloaded.`;
      } else {
        showError('The connection was lost. The rows that arrived can still be downloaded.');
      }
    } finally {
      controller = null;
      running(false);
      draw();
    }
  });
})();
