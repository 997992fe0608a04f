'use strict';
// Helpers every page's script uses (loaded first, on every page):
// top-k bounded by the beam, copying text, attention heatmaps.
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
