// diffrestore serve: the page. Plain JavaScript, no framework, no network
// access beyond this server. The API is documented in docs/SERVE.md.
'use strict';

const $ = (id) => document.getElementById(id);
const state = {
  file: null,        // the File the user opened
  bitmap: null,      // its decoded, upright pixels (null: the browser cannot show it)
  models: {},        // mode -> /api/models entry
  tool: 'brush',
  undo: [],          // mask snapshots (ImageData), newest last
  painted: 0,        // strokes and boxes on the mask since it was cleared
  job: null,         // the running job's id
  events: null,      // its EventSource
  resultUrl: null,
  beforeUrl: null,
};

// ------------------------------------------------------------------ messages

function showError(msg) {
  const e = $('error');
  e.textContent = msg;
  e.hidden = !msg;
}

// The server's error bodies are sentences already; the status adds context.
async function apiError(resp) {
  let msg = '';
  try { msg = (await resp.json()).error || ''; } catch (_) { /* not JSON */ }
  switch (resp.status) {
    case 413: return 'This photo is too large for the server. ' + msg;
    case 415: return 'The server cannot read this file as a photo. ' + msg;
    case 429: return 'You already have jobs running. ' + msg;
    case 503: return 'The server is busy. ' + msg + ' (Try again in a few seconds.)';
    default: return msg || ('The server answered ' + resp.status + '.');
  }
}

// ------------------------------------------------------------------ models and status

async function loadInfo() {
  try {
    const [m, s] = await Promise.all([fetch('/api/models'), fetch('/api/status')]);
    const models = (await m.json()).models;
    const status = await s.json();
    const names = [];
    for (const e of models) {
      state.models[e.mode] = e;
      const radio = document.querySelector(`input[name=mode][value=${e.mode}]`);
      if (!radio) continue; // a mode this page has no control for
      if (!e.available) {
        radio.disabled = true;
        radio.parentElement.title = e.why;
        names.push(`${e.mode}: not available (${e.why})`);
      } else {
        const steps = e.meta && e.meta.train_steps ? `, ${e.meta.train_steps} training steps` : '';
        names.push(`${e.mode}: ${e.file}${steps}`);
      }
    }
    const sr = state.models.superres;
    if (sr && sr.available) {
      for (const o of $('scale').options) o.disabled = +o.value < sr.scale_min - 1e-6 || +o.value > sr.scale_max + 1e-6;
    }
    const checked = document.querySelector('input[name=mode]:checked');
    if (checked.disabled) {
      const first = document.querySelector('input[name=mode]:not(:disabled)');
      if (first) first.checked = true;
    }
    $('models-info').textContent = 'Models: ' + names.join('; ') + `. Server ${status.version}, ${status.threads} threads.`;
    if (status.exposed) {
      const b = $('exposed');
      b.textContent = `This server listens on ${status.listen}, not only on this machine: anyone who can reach ` +
        'it over the network can use it and see what is restored.';
      b.hidden = false;
    }
    modeChanged();
  } catch (err) {
    showError('Cannot reach the diffrestore server. Is `diffrestore serve` still running?');
  }
}

function mode() { return document.querySelector('input[name=mode]:checked').value; }

function modeChanged() {
  for (const p of document.querySelectorAll('.mode-panel')) p.hidden = p.dataset.mode !== mode();
  $('mask').hidden = mode() !== 'inpaint';
  updateSizeInfo();
  updateRestoreButton();
}

function updateRestoreButton() {
  let ok = !!state.file && !state.job;
  if (ok && mode() === 'inpaint' && !state.painted) ok = false;
  if (ok && mode() === 'inpaint' && !state.bitmap) ok = false;
  $('restore').disabled = !ok;
}

// ------------------------------------------------------------------ opening a photo

async function openFile(file) {
  showError('');
  if (!file) return;
  state.file = file;
  $('filename').textContent = file.name;
  $('empty').hidden = true;
  $('compare').hidden = true;
  $('result-actions').hidden = true;
  state.bitmap = null;
  try {
    state.bitmap = await createImageBitmap(file, { imageOrientation: 'from-image' });
  } catch (_) {
    state.bitmap = null; // TIFF, for one: the server reads it, this browser does not
  }
  if (state.beforeUrl) URL.revokeObjectURL(state.beforeUrl);
  state.beforeUrl = state.bitmap ? URL.createObjectURL(file) : null;
  if (state.bitmap) {
    const { width: w, height: h } = state.bitmap;
    const photo = $('photo'), mask = $('mask');
    photo.width = mask.width = w;
    photo.height = mask.height = h;
    photo.getContext('2d').drawImage(state.bitmap, 0, 0);
    clearMask(false);
    $('editor').hidden = false;
    $('no-preview').hidden = true;
    $('box-w').value = Math.max(1, Math.round(w / 8));
    $('box-h').value = Math.max(1, Math.round(h / 8));
  } else {
    $('editor').hidden = true;
    const p = $('no-preview');
    p.textContent = `This browser cannot show ${file.name}, so there is no brush for it; colorize and enlarge ` +
      'still work (or convert it to PNG to repair damage).';
    p.hidden = false;
  }
  updateSizeInfo();
  updateRestoreButton();
}

// ------------------------------------------------------------------ the mask

function maskCtx() { return $('mask').getContext('2d', { willReadFrequently: true }); }

function snapshot() {
  const m = $('mask');
  state.undo.push({ data: maskCtx().getImageData(0, 0, m.width, m.height), painted: state.painted });
  if (state.undo.length > 30) state.undo.shift();
}

function clearMask(keepUndo) {
  const m = $('mask');
  if (keepUndo) snapshot(); else state.undo = [];
  maskCtx().clearRect(0, 0, m.width, m.height);
  state.painted = 0;
  maskChanged();
}

function undo() {
  const s = state.undo.pop();
  if (!s) return;
  maskCtx().putImageData(s.data, 0, 0);
  state.painted = s.painted;
  maskChanged();
}

function maskChanged() {
  $('mask-info').textContent = state.painted
    ? `${state.painted} mark${state.painted > 1 ? 's' : ''} on the mask: the red area will be filled.`
    : 'Nothing marked yet: paint over scratches, spots or tears.';
  updateRestoreButton();
}

function setTool(t) {
  state.tool = t;
  for (const n of ['brush', 'eraser', 'box']) $('tool-' + n).setAttribute('aria-pressed', String(n === t));
}

// pointer position in image pixels
function imagePoint(ev) {
  const m = $('mask');
  const r = m.getBoundingClientRect();
  return { x: (ev.clientX - r.left) * m.width / r.width, y: (ev.clientY - r.top) * m.height / r.height };
}

function brushRadius() {
  // the slider is in screen pixels: the same feel whatever the photo's size
  const m = $('mask');
  const scale = m.width / Math.max(1, m.getBoundingClientRect().width);
  return Math.max(1, (+$('brush-size').value / 2) * scale);
}

let drag = null;
function pointerDown(ev) {
  if (!state.bitmap || ev.button > 0) return;
  ev.preventDefault();
  $('mask').setPointerCapture(ev.pointerId);
  snapshot();
  const p = imagePoint(ev);
  drag = { start: p, last: p, before: null };
  if (state.tool === 'box') {
    const m = $('mask');
    drag.before = maskCtx().getImageData(0, 0, m.width, m.height);
  } else {
    strokeTo(p, p);
  }
}

function strokeTo(a, b) {
  const ctx = maskCtx();
  ctx.save();
  ctx.globalCompositeOperation = state.tool === 'eraser' ? 'destination-out' : 'source-over';
  ctx.strokeStyle = ctx.fillStyle = '#ff0000';
  ctx.lineWidth = 2 * brushRadius();
  ctx.lineCap = ctx.lineJoin = 'round';
  ctx.beginPath();
  ctx.moveTo(a.x, a.y);
  ctx.lineTo(b.x + 0.01, b.y);
  ctx.stroke();
  ctx.restore();
}

function pointerMove(ev) {
  if (!drag) return;
  const p = imagePoint(ev);
  if (state.tool === 'box') {
    const ctx = maskCtx();
    ctx.putImageData(drag.before, 0, 0);
    ctx.fillStyle = '#ff0000';
    ctx.fillRect(Math.min(drag.start.x, p.x), Math.min(drag.start.y, p.y),
      Math.abs(p.x - drag.start.x), Math.abs(p.y - drag.start.y));
  } else {
    strokeTo(drag.last, p);
  }
  drag.last = p;
}

function pointerUp() {
  if (!drag) return;
  drag = null;
  state.painted++;
  maskChanged();
}

function addBox() {
  if (!state.bitmap) return;
  const v = (id) => Math.round(+$(id).value);
  const [x, y, w, h] = [v('box-x'), v('box-y'), v('box-w'), v('box-h')];
  if (!(w > 0 && h > 0)) { showError('A box needs a width and a height of at least one pixel.'); return; }
  snapshot();
  const ctx = maskCtx();
  ctx.fillStyle = '#ff0000';
  ctx.fillRect(x, y, w, h);
  state.painted++;
  maskChanged();
}

// The mask as the server wants it: a PNG of the photo's size, red (first
// channel) where to fill, black elsewhere.
function maskPng() {
  const m = $('mask');
  const c = document.createElement('canvas');
  c.width = m.width;
  c.height = m.height;
  const ctx = c.getContext('2d');
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, c.width, c.height);
  ctx.drawImage(m, 0, 0);
  return c.toDataURL('image/png');
}

// ------------------------------------------------------------------ superres size

function updateSizeInfo() {
  const info = $('size-info');
  if (!state.bitmap) { info.textContent = ''; return; }
  const { width: w, height: h } = state.bitmap;
  if (document.querySelector('input[name=size-by]:checked').value === 'scale') {
    const s = +$('scale').value;
    info.textContent = `${w}×${h} becomes ${Math.round(w * s)}×${Math.round(h * s)}.`;
  } else {
    const tw = +$('target-width').value;
    const sr = state.models.superres;
    if (tw > 0) {
      const s = tw / w;
      let t = `${w}×${h} becomes ${tw}×${Math.round(h * s)} (×${s.toFixed(2)}).`;
      if (sr && (s < sr.scale_min - 1e-3 || s > sr.scale_max + 1e-3))
        t += ` The model enlarges ×${sr.scale_min} to ×${sr.scale_max} only.`;
      info.textContent = t;
    } else info.textContent = '';
  }
}

// ------------------------------------------------------------------ restoring

function readDataUrl(file) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(file);
  });
}

async function restore(newSeed) {
  if (!state.file || state.job) return;
  showError('');
  const req = { mode: mode(), name: state.file.name, quality: $('quality').value, format: $('format').value };
  req.image = await readDataUrl(state.file);
  if (req.mode === 'inpaint') req.mask = maskPng();
  if (req.mode === 'superres') {
    if (document.querySelector('input[name=size-by]:checked').value === 'scale') req.scale = +$('scale').value;
    else {
      const tw = Math.round(+$('target-width').value);
      if (!(tw > 0)) { showError('Give the width of the enlarged photo in pixels, or choose a scale.'); return; }
      req.width = tw;
    }
  }
  if ($('steps').value) req.steps = Math.round(+$('steps').value);
  if (newSeed || !$('seed').value) $('seed').value = Math.floor(Math.random() * 2 ** 31);
  req.seed = Math.round(+$('seed').value);

  setBusy(true, 'Sending the photo…', 0);
  let resp;
  try {
    resp = await fetch('/api/jobs', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(req) });
  } catch (_) {
    setBusy(false);
    showError('Cannot reach the diffrestore server. Is `diffrestore serve` still running?');
    return;
  }
  if (resp.status !== 202) {
    setBusy(false);
    showError(await apiError(resp));
    return;
  }
  const job = await resp.json();
  state.job = job.id;
  follow(job);
}

function describe(j) {
  if (j.state === 'queued') return j.position > 1 ? `Waiting: ${j.position - 1} job(s) before this one.` : 'Starting…';
  if (j.state === 'running') {
    const tiles = j.tiles > 1 ? ` (part ${Math.min(j.tile + 1, j.tiles)} of ${j.tiles})` : '';
    return `Restoring: step ${Math.min(j.step + 1, j.steps)} of ${j.steps}${tiles}.`;
  }
  return '';
}

function follow(job) {
  setBusy(true, describe(job), job.progress);
  const es = new EventSource(`/api/jobs/${job.id}/events`);
  state.events = es;
  es.addEventListener('progress', (ev) => {
    const j = JSON.parse(ev.data);
    setBusy(true, describe(j), j.progress);
  });
  es.addEventListener('end', (ev) => {
    es.close();
    state.events = null;
    const j = JSON.parse(ev.data);
    finished(j);
  });
  es.onerror = () => {
    if (es.readyState === EventSource.CLOSED && state.job === job.id) {
      state.events = null;
      state.job = null;
      setBusy(false);
      showError('The connection to the server was lost while restoring.');
    }
  };
}

async function finished(j) {
  state.job = null;
  if (j.state !== 'done') {
    setBusy(false);
    if (j.state === 'failed') showError('Restoring failed: ' + (j.error || 'no reason given.'));
    else if (j.state === 'cancelled' && j.error) showError(j.error);
    updateRestoreButton();
    return;
  }
  setBusy(true, 'Fetching the result…', 1);
  const resp = await fetch(j.result);
  if (!resp.ok) {
    setBusy(false);
    showError(await apiError(resp));
    return;
  }
  const blob = await resp.blob();
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  const cd = resp.headers.get('Content-Disposition') || '';
  const m = /filename="([^"]+)"/.exec(cd);
  const a = $('download');
  a.href = state.resultUrl;
  a.download = m ? m[1] : 'restored.png';
  $('after').src = state.resultUrl;
  $('before').src = state.beforeUrl || state.resultUrl;
  $('result-info').textContent = `${j.out_width}×${j.out_height}, seed ${j.seed}, ${j.seconds.toFixed(1)} s.` +
    (state.beforeUrl ? ' Drag the slider to compare.' : '');
  $('compare').hidden = false;
  $('result-actions').hidden = false;
  setSplit();
  setBusy(false);
  updateRestoreButton();
}

async function cancel() {
  const id = state.job;
  if (!id) return;
  if (state.events) { state.events.close(); state.events = null; }
  state.job = null;
  setBusy(false);
  try { await fetch(`/api/jobs/${id}`, { method: 'DELETE' }); } catch (_) { /* gone already */ }
  $('progress-text').textContent = 'Cancelled.';
  $('progress-box').hidden = false;
  updateRestoreButton();
}

function setBusy(busy, text, frac) {
  $('progress-box').hidden = !busy;
  $('cancel').hidden = !busy;
  $('again').disabled = busy;
  if (busy) {
    $('progress').value = frac || 0;
    $('progress-text').textContent = text || '';
  }
  updateRestoreButton();
  if (busy) $('restore').disabled = true;
}

function setSplit() {
  $('after').style.clipPath = `inset(0 ${100 - +$('split').value}% 0 0)`;
}

// ------------------------------------------------------------------ wiring

function init() {
  $('file').addEventListener('change', (e) => openFile(e.target.files[0]));
  const drop = $('drop');
  for (const t of [drop, document.body]) {
    t.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
    t.addEventListener('dragleave', () => drop.classList.remove('over'));
    t.addEventListener('drop', (e) => {
      e.preventDefault();
      drop.classList.remove('over');
      if (e.dataTransfer.files.length) openFile(e.dataTransfer.files[0]);
    });
  }
  for (const r of document.querySelectorAll('input[name=mode]')) r.addEventListener('change', modeChanged);
  for (const r of document.querySelectorAll('input[name=size-by]')) r.addEventListener('change', updateSizeInfo);
  $('scale').addEventListener('change', updateSizeInfo);
  $('target-width').addEventListener('input', () => {
    document.querySelector('input[name=size-by][value=width]').checked = true;
    updateSizeInfo();
  });
  $('tool-brush').addEventListener('click', () => setTool('brush'));
  $('tool-eraser').addEventListener('click', () => setTool('eraser'));
  $('tool-box').addEventListener('click', () => setTool('box'));
  $('undo').addEventListener('click', undo);
  $('clear').addEventListener('click', () => clearMask(true));
  $('box-add').addEventListener('click', addBox);
  $('brush-size').addEventListener('input', () => { $('brush-size-out').textContent = $('brush-size').value; });
  const mask = $('mask');
  mask.addEventListener('pointerdown', pointerDown);
  mask.addEventListener('pointermove', pointerMove);
  mask.addEventListener('pointerup', pointerUp);
  mask.addEventListener('pointercancel', pointerUp);
  $('restore').addEventListener('click', () => restore(false));
  $('again').addEventListener('click', () => restore(true));
  $('cancel').addEventListener('click', cancel);
  $('split').addEventListener('input', setSplit);
  document.addEventListener('keydown', (e) => {
    const inField = e.target.matches('input[type=number], select');
    if (e.key === 'Enter' && inField && !$('restore').disabled) { restore(false); return; }
    if (e.target.matches('input, select, textarea')) return;
    if ((e.ctrlKey || e.metaKey) && e.key.toLowerCase() === 'z') { e.preventDefault(); undo(); return; }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const b = $('brush-size');
    switch (e.key) {
      case 'b': setTool('brush'); break;
      case 'e': setTool('eraser'); break;
      case 'x': setTool('box'); break;
      case '[': b.value = Math.max(+b.min, +b.value - 4); b.dispatchEvent(new Event('input')); break;
      case ']': b.value = Math.min(+b.max, +b.value + 4); b.dispatchEvent(new Event('input')); break;
      case 'Escape': if (state.job) cancel(); break;
      default: return;
    }
  });
  maskChanged();
  loadInfo();
}

init();
