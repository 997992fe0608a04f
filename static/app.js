'use strict';
// Progressive enhancement of the translate page: translate without reloading,
// a live character counter, example chips, top-k bounded by the beam, a spinner
// with elapsed time, inline errors, copy buttons. Every feature also works
// without this file (the form posts and the server renders the same results).
(() => {
  const $ = (sel, root = document) => root.querySelector(sel);
  const form = $('#translate');
  if (!form) return;
  const text = $('#text');
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

  const boundTopK = () => {
    const b = Number(beam.value);
    for (const o of nBest.options) o.disabled = Number(o.value) > b;
    if (Number(nBest.value) > b) nBest.value = String(b);
  };

  const showError = (message) => {
    error.textContent = message || '';
    error.hidden = !message;
  };

  let timer = null;
  const startSpinner = () => {
    const started = performance.now();
    status.hidden = false;
    results.setAttribute('aria-busy', 'true');
    const tick = () => {
      const s = (performance.now() - started) / 1000;
      statusText.textContent = s < 4
        ? `Translating… ${s.toFixed(1)} s`
        : `Translating… ${s.toFixed(0)} s. The model may be starting up: the first request after a quiet period can take 10–30 s.`;
    };
    tick();
    timer = setInterval(tick, 200);
  };
  const stopSpinner = () => {
    clearInterval(timer);
    status.hidden = true;
    results.removeAttribute('aria-busy');
  };

  const describe = async (response) => {
    let body = null;
    try { body = await response.json(); } catch (_) { /* not JSON */ }
    const code = body && body.error && body.error.code;
    const message = body && body.error && body.error.message;
    const wait = response.headers.get('retry-after');
    if (code === 'overloaded' || code === 'lambda_throttled') {
      return `The model is busy. Try again in ${wait || 'a few'} s.`;
    }
    if (code === 'lambda_timeout') return 'The model did not answer in time. Try again, or a shorter input.';
    if (code === 'lambda_unavailable') return `The model cannot be reached right now (${message}).`;
    if (message) return message.charAt(0).toUpperCase() + message.slice(1);
    return `The server answered with status ${response.status}. Please try again.`;
  };

  const enhance = () => {
    for (const b of results.querySelectorAll('[data-copy], #copy-link')) b.hidden = false;
  };

  const copy = async (value, button) => {
    const label = button.textContent;
    try {
      await navigator.clipboard.writeText(value);
      button.textContent = 'Copied';
    } catch (_) {
      button.textContent = 'Copy failed';
    }
    setTimeout(() => { button.textContent = label; }, 1500);
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
    startSpinner();
    try {
      const response = await fetch('/api/v1/translate', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/html' },
        body: JSON.stringify({ text: value, beam: Number(beam.value), n_best: Number(nBest.value) }),
        signal: controller.signal,
      });
      if (response.ok) {
        results.innerHTML = await response.text();
        enhance();
        // On small screens the results start below the fold: bring them up.
        if (results.getBoundingClientRect().top > window.innerHeight * 0.6) {
          results.scrollIntoView({ block: 'start', behavior: 'smooth' });
        }
      } else {
        showError(await describe(response));
      }
    } catch (err) {
      if (err.name !== 'AbortError') showError('The server could not be reached. Check the connection and try again.');
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
    showError(null);
    updateCounter();
    text.focus();
  });

  results.addEventListener('click', (event) => {
    const target = event.target.closest('[data-copy], #copy-link');
    if (!target) return;
    if (target.id === 'copy-link') {
      copy(`${location.origin}/?text=${encodeURIComponent(text.value)}`, target);
    } else {
      copy(target.dataset.copy, target);
    }
  });

  boundTopK();
  updateCounter();
  enhance();
})();
