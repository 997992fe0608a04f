'use strict';
// Inside the molecule editor's frame (/editor): starts JSME (vendored in
// static/vendor/jsme, BSD licence) and talks to the translate page by
// messages from and to this origin only: the page sends 'editor-set' with a
// SMILES to show and 'editor-get' for what is drawn; this frame answers
// 'editor-ready' and 'editor-smiles'.
(() => {
  let applet = null;
  let pending = null;
  const send = (message) => window.parent.postMessage(message, window.location.origin);
  const size = () => [
    `${Math.max(280, window.innerWidth - 2)}px`,
    `${Math.max(240, window.innerHeight - 2)}px`,
  ];
  const show = (smiles) => {
    if (smiles) applet.readGenericMolecularInput(smiles);
    else applet.reset();
  };

  // JSME calls this global once its code has loaded.
  window.jsmeOnLoad = () => {
    const [w, h] = size();
    // 'reaction': an arrow may be drawn, and the expected product after it.
    applet = new window.JSApplet.JSME('jsme', w, h, { options: 'reaction,nosearchinchiKey,nopaste' });
    // JSME's own API, for whoever drives this frame (the browser tests do).
    window.jsmeApplet = applet;
    document.getElementById('editor-status').hidden = true;
    if (pending !== null) show(pending);
    send({ type: 'editor-ready' });
  };

  window.addEventListener('message', (event) => {
    if (event.origin !== window.location.origin || event.source !== window.parent) return;
    const m = event.data || {};
    if (m.type === 'editor-set') {
      const smiles = typeof m.smiles === 'string' ? m.smiles : '';
      if (applet) show(smiles);
      else pending = smiles;
    } else if (m.type === 'editor-get') {
      send({ type: 'editor-smiles', smiles: applet ? applet.smiles() : '' });
    }
  });

  window.addEventListener('resize', () => {
    if (!applet) return;
    const [w, h] = size();
    applet.setSize(w, h);
  });
})();
