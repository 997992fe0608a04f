'use strict';
// The batch page: upload, stream NDJSON results with progress, cancel, a paged
// table, the accuracy summary, and the CSV of what arrived (written by the
// server from the rows). Without this
// file the form posts and the server answers with the CSV download.
// (Over 500 lines: one page's script, one closure over the page's elements;
// its parts share the rows that have arrived and the table's state.)
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
  // Failures whose input is wrong (it would fail again as sent), in words for
  // the summary; the other kinds are the server's own sentence.
  const KIND_WORDS = {
    invalid_input: 'the input cannot be read (each row says why).',
    too_large: 'the input is larger than this server reads.',
  };
  const canRetry = (r) => Boolean(r.error) && !(r.error.code in KIND_WORDS);
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
      head.append(el('span', 'rank', `#${p.rank}`), el('code', 'pred-text', p.text), el('span', 'pct', p.probability_text));
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
    const visible = list.slice(page * PAGE, page * PAGE + PAGE);
    // Without targets the Target and Correct at columns would stay empty.
    tbody.parentElement.classList.toggle('no-targets', !visible.some((r) => r.target != null));
    for (const r of visible) {
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
        cell(tr, top ? top.probability_text : '', 'num');
      }
      cell(tr, r.target == null ? '' : r.target, 'mono target').title = r.target || '';
      const verdict = el('td', 'verdict');
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
    // Rows whose input is wrong would fail again: retry is for the others.
    retry.hidden = !rows.some(canRetry);
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
  const handle = async (msg) => {
    if (msg.type === 'start') {
      if (retrying) {
        progressText.textContent = `Retrying ${retrying.indices.length} failed rows…`;
        return;
      }
      if (!offset) total = msg.total;
      progressText.textContent = `${offset} of ${total} rows…`;
    } else if (msg.type === 'interrupted') {
      resumeFrom = msg.resume_from;
    } else if (msg.type === 'result') {
      if (retrying) {
        msg.index = retrying.indices[msg.index];
        rows[retrying.at.get(msg.index)] = msg;
        scheduleDraw();
        return;
      }
      rows.push(msg);
      if (rows.length <= (page + 1) * PAGE) scheduleDraw();
    } else if (msg.type === 'progress') {
      if (retrying) {
        bar.value = msg.done / retrying.indices.length;
        progressText.textContent = `Retrying: ${msg.done} of ${retrying.indices.length} rows`;
        return;
      }
      const done = offset + msg.done;
      if (msg.done === 0) {
        // Nothing back yet (a chunk takes seconds, more when the function
        // starts cold): an indeterminate bar and the rows being translated.
        bar.removeAttribute('value');
        const withModel = msg.in_flight ? ` · ${msg.in_flight} being translated` : '';
        const soFar = msg.elapsed_ms >= 1000 ? ` · ${duration(msg.elapsed_ms)} so far` : '';
        progressText.textContent = `${done} of ${total} rows${withModel}${soFar}…`;
        return;
      }
      bar.value = total ? done / total : 1;
      const left = msg.eta_ms == null ? '' : ` · about ${duration(msg.eta_ms)} left`;
      progressText.textContent = `${done} of ${total} rows · ${msg.rate_per_s} rows/s${left}`;
      scheduleDraw();
    } else if (msg.type === 'summary') {
      bar.value = 1;
      // After a resume or a retry the server's summary covers only its part:
      // count all rows.
      const s = resumed || retrying ? (await summaryOf(rows, performance.now() - runStarted)) || msg : msg;
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
    // The reasons grouped by kind (each row's own message names its row).
    const kinds = new Map();
    for (const r of rows.filter((x) => x.error)) {
      const k = kinds.get(r.error.code) || { n: 0, words: KIND_WORDS[r.error.code] || sentence(r.error.message) };
      k.n += 1;
      kinds.set(r.error.code, k);
    }
    const groups = [...kinds.values()].sort((a, b) => b.n - a.n);
    const why = groups.length === 1 && groups[0].n === s.failed
      ? `Every failed row: ${groups[0].words}`
      : groups.map((g) => `${g.n} row${g.n === 1 ? '' : 's'}: ${g.words}`).join(' ');
    const retryable = rows.some(canRetry);
    const next = retryable ? '“Retry failed rows” sends again the rows that could succeed.' : 'Correct those inputs and send them again.';
    if (s.failed === s.total) {
      showError(`Nothing was translated: all ${s.total} rows failed. ${why} ${next}`);
    } else {
      showError(null);
      const p = el('p', 'hint', `${s.failed} rows failed. ${why} “Failed rows only” shows them; ${next.charAt(0).toLowerCase()}${next.slice(1)}`);
      summary.appendChild(p);
    }
  };

  // Sends the failed rows again, with the run's beam and top-k; their answers
  // take their places in the table.
  retry.addEventListener('click', async () => {
    const failedRows = rows.filter(canRetry);
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

  // Every row received, as the batch's NDJSON lines: what the server's
  // export reads to write them again by its own rules.
  const asLines = (all) => all.map((r) => JSON.stringify(r)).join('\n') + '\n';
  const exportRows = (query) => fetch(`/api/v1/translate/batch/export?${query}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-ndjson' },
    body: asLines(rows),
  });

  // The summary of every row received, from the server (after a resume or a
  // retry the last request's own summary covers only its part); null if it
  // cannot be had.
  const summaryOf = async (all, elapsed) => {
    try {
      const r = await exportRows(`format=summary&n_best=${runParams.n_best}`);
      return r.ok ? { ...(await r.json()), elapsed_ms: elapsed } : null;
    } catch (_) {
      return null;
    }
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
        if (line.trim()) await handle(JSON.parse(line));
      }
    }
  };

  // The rows that arrived as a file written by the server: the CSV (the same
  // as the batch's ?format=csv) or, in SMILES mode, the SDF of their
  // predictions (one record per molecule), from one request or several.
  const downloadAs = async (format, name, what) => {
    let response;
    try {
      response = await exportRows(`format=${format}`);
    } catch (_) {
      showError(`The ${what} could not be made: the server cannot be reached. Try again in a moment.`);
      return;
    }
    if (!response.ok) {
      showError(await batchError(response));
      return;
    }
    const blob = await response.blob();
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  };
  const downloads = [$('#download'), $('#download-sdf')].filter(Boolean);
  $('#download').addEventListener('click', () => downloadAs('csv', 'translations.csv', 'CSV'));
  if ($('#download-sdf')) $('#download-sdf').addEventListener('click', () => downloadAs('sdf', 'predictions.sdf', 'SDF'));

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
        if (resumeFrom == null || resumeFrom >= total) break;
        // The server was shutting down (a scale-down or a rollout): send the
        // rest; the load balancer picks a server that is staying.
        offset = resumeFrom;
        resumeFrom = null;
        resumed += 1;
        progressText.textContent = `A server was replaced: continuing from row ${offset + 1} on another one…`;
        // The same files again, from the row where it stopped: the server
        // reads them as before and the rows keep their numbers.
        const again = new FormData(form);
        if (!form.targets.files.length) again.delete('targets');
        again.set('resume_from', String(offset));
        response = await fetch('/api/v1/translate/batch', {
          method: 'POST',
          body: again,
          headers: { accept: 'application/x-ndjson' },
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
      // Nothing to download from a batch cancelled before its first row.
      for (const b of downloads) b.disabled = rows.length === 0;
      draw();
    }
  });
})();
