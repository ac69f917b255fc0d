// grasp_autolabel review: the grid, one item large, keyboard decisions, mouse edits.
// Grasps are [x, y, theta, w, h] in image pixels; theta is the closing direction, w the
// opening (along it), h the jaw size. Every decision and edit is saved at once.
'use strict';
const SVGNS = 'http://www.w3.org/2000/svg';
const state = { items: [], pos: -1, item: null, grasps: [], cands: [], selected: -1, undo: [],
                mouse: [0, 0], drag: null, hoverCand: -1, keyAt: null };
const $ = (id) => document.getElementById(id);

function el(name, attrs, parent) {
  const e = document.createElementNS(SVGNS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function corners(g) {
  const [x, y, t, w, h] = g, d = [Math.cos(t), Math.sin(t)], n = [-d[1], d[0]];
  const p = (a, b) => [x + a * d[0] * w / 2 + b * n[0] * h / 2, y + a * d[1] * w / 2 + b * n[1] * h / 2];
  return [p(-1, -1), p(1, -1), p(1, 1), p(-1, 1)];
}

function normalise(t) {  // theta and theta + pi are one grasp: [-pi/2, pi/2)
  t = ((t + Math.PI / 2) % Math.PI + Math.PI) % Math.PI - Math.PI / 2;
  return t;
}

function line(parent, a, b, cls) {
  el('line', { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: cls }, parent);
}

function drawGrasp(svg, g, k, editable) {
  const c = corners(g), group = el('g', { class: 'grasp' + (k === state.selected ? ' selected' : ''),
                                         'data-k': k }, svg);
  el('polygon', { points: c.map((p) => p.join(',')).join(' '), class: 'body' }, group);
  line(group, c[0], c[1], 'opening'); line(group, c[3], c[2], 'opening');  // along the closing
  line(group, c[1], c[2], 'jaw'); line(group, c[0], c[3], 'jaw');          // the jaws
  if (editable && k === state.selected) {
    const [x, y, t, w] = g, d = [Math.cos(t), Math.sin(t)], r = Math.max(4, w / 12);
    el('circle', { cx: x + d[0] * (w / 2 + 3 * r), cy: y + d[1] * (w / 2 + 3 * r), r, class: 'handle turn',
                   'data-k': k, 'data-h': 'turn' }, group);
    el('rect', { x: x + d[0] * w / 2 - r, y: y + d[1] * w / 2 - r, width: 2 * r, height: 2 * r,
                 class: 'handle open', 'data-k': k, 'data-h': 'open' }, group);
  }
}

function drawItem(svg, item, grasps, editable, cands) {
  svg.replaceChildren();
  svg.setAttribute('viewBox', `0 0 ${item.width} ${item.height}`);
  el('image', { href: `/image/${item.index}`, width: item.width, height: item.height }, svg);
  for (const poly of item.outline) el('polygon', { points: poly.map((p) => p.join(',')).join(' '), class: 'outline' }, svg);
  (cands || []).forEach((c, k) => {  // the detector's candidates, under the labels
    el('polygon', { points: corners(c.grasp).map((p) => p.join(',')).join(' '), 'data-c': k,
                    class: 'candidate' + (c.mark ? ' ' + c.mark : '') }, svg);
  });
  grasps.forEach((g, k) => drawGrasp(svg, g, k, editable));
}

function say(text) { $('status').textContent = text; }

async function call(url, body) {
  const r = await fetch(url, body ? { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                       body: JSON.stringify(body) } : {});
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

let gridLoads = 0;
async function loadGrid() {
  const show = $('show').value, mine = ++gridLoads;
  const data = await call(`/api/items?show=${show}`);
  if (mine !== gridLoads) return;  // a later filter's list is coming
  $('dataset').textContent = data.dataset + (data.read_only ? ' (read-only)' : '');
  state.items = data.items;
  const grid = $('grid');
  grid.replaceChildren();
  data.items.forEach((it, pos) => {
    const cell = document.createElement('div');
    cell.className = 'cell' + (it.verdict ? ` reviewed-${it.verdict}` : '');
    cell.dataset.index = it.index;
    const svg = el('svg', {}, cell);
    drawItem(svg, it, it.grasps, false, it.candidates);
    const p = document.createElement('p');
    p.textContent = `#${it.index} ${it.accepted ? 'accepted' : it.reason}` +
                    (it.verdict ? ` / ${it.verdict} by a person` : '');
    cell.appendChild(p);
    cell.onclick = () => openItem(pos);
    grid.appendChild(cell);
  });
  grid.dataset.show = show;
}

let navigations = 0;
async function openItem(pos) {
  if (pos < 0 || pos >= state.items.length) return;
  const mine = ++navigations;
  const item = await call(`/api/items/${state.items[pos].index}`);
  const img = new Image();  // decoded before it is drawn: the item appears whole, at once
  img.src = `/image/${item.index}`;
  await img.decode().catch(() => {});
  if (mine !== navigations) return;  // the person went on meanwhile
  state.pos = pos;
  state.item = item;
  state.grasps = state.item.grasps.map((g) => g.slice());
  state.cands = state.item.candidates.map((c) => ({ ...c }));
  state.selected = -1;
  $('grid').hidden = true; $('item').hidden = false;
  location.hash = `#/item/${state.item.index}`;
  redraw();
  $('view').focus();
  if (state.keyAt !== null) {  // key press -> this item drawn (bench/review.py reads them)
    const t0 = state.keyAt;
    state.keyAt = null;
    requestAnimationFrame(() => window.reviewTimings.push(performance.now() - t0));
  }
}
window.reviewTimings = [];

function redraw() {
  const it = state.item;
  drawItem($('view'), it, state.grasps, !it.read_only, state.cands);
  $('title').textContent = `item ${it.index} (${state.pos + 1} of ${state.items.length})`;
  $('gate').textContent = it.accepted ? 'the gate accepted it' : `the gate rejected it: ${it.reason} (${it.detail})`;
  $('verdict').textContent = it.verdict ? `reviewed: ${it.verdict}` : 'not reviewed';
  $('view').dataset.index = it.index;
  $('view').dataset.verdict = it.verdict || '';
}

async function save(verdict, record = true) {
  const it = state.item;
  if (record) state.undo.push({ pos: state.pos, verdict: it.verdict, grasps: it.grasps.map((g) => g.slice()),
                                cands: it.candidates.map((c) => ({ ...c })) });
  try {
    const candidates = state.cands.filter((c) => c.mark).map((c) => ({ grasp: c.grasp, mark: c.mark }));
    const back = await call(`/api/items/${it.index}/review`,
                            { verdict, grasps: state.grasps, etag: it.etag, candidates });
    state.cands = back.candidates.map((c) => ({ ...c }));
    Object.assign(it, back);
    state.items[state.pos].verdict = back.verdict;
    say(`item ${it.index} saved${verdict ? ': ' + verdict : ''}`);
  } catch (e) {
    if (record) state.undo.pop();
    say(e.message);
  }
  redraw();
}

async function undo() {
  const last = state.undo.pop();
  if (!last) return say('nothing to undo');
  if (last.pos !== state.pos) await openItem(last.pos);
  state.grasps = last.grasps.map((g) => g.slice());
  state.cands = last.cands;
  await save(last.verdict, false);  // undoing is not itself undone
}

function svgPoint(evt) {
  const svg = $('view'), p = svg.createSVGPoint();
  p.x = evt.clientX; p.y = evt.clientY;
  const q = p.matrixTransform(svg.getScreenCTM().inverse());
  return [q.x, q.y];
}

function medianOf(k, fallback) {
  const v = state.grasps.concat(state.item.auto_grasps).map((g) => g[k]).sort((a, b) => a - b);
  return v.length ? v[Math.floor(v.length / 2)] : fallback;
}

async function onKey(evt) {
  if ($('item').hidden || evt.ctrlKey || evt.metaKey || evt.altKey) return;
  const key = evt.key;
  const ro = state.item.read_only;
  state.keyAt = performance.now();
  if (key === 'Escape') { navigations++; $('item').hidden = true; $('grid').hidden = false; location.hash = '#/'; return loadGrid(); }
  if (key === 'n' || key === 'ArrowRight') return openItem(state.pos + 1);
  if (key === 'p' || key === 'ArrowLeft') return openItem(state.pos - 1);
  if (ro) return say('read-only: another writer holds the dataset');
  if (key === 'a' || key === 'r') {
    evt.preventDefault();
    await save(key === 'a' ? 'accepted' : 'rejected');
    return openItem(Math.min(state.pos + 1, state.items.length - 1));
  }
  if (key === 'u') return undo();
  if ((key === 'y' || key === 'w') && state.hoverCand >= 0) {  // a candidate right or wrong
    const c = state.cands[state.hoverCand], mark = key === 'y' ? 'right' : 'wrong';
    c.mark = c.mark === mark ? null : mark;
    return save(state.item.verdict);
  }
  if (key === 'g') {
    const [x, y] = state.mouse;
    state.grasps.push([x, y, 0, medianOf(3, 40), medianOf(4, 10)]);
    state.selected = state.grasps.length - 1;
    return save(state.item.verdict);
  }
  if ((key === 'x' || key === 'Delete') && state.selected >= 0) {
    state.grasps.splice(state.selected, 1);
    state.selected = -1;
    return save(state.item.verdict);
  }
}

function onDown(evt) {
  if (state.item.read_only) return;
  const t = evt.target, k = t.dataset.k !== undefined ? +t.dataset.k : +(t.parentNode.dataset || {}).k;
  if (Number.isNaN(k) || t.closest('.grasp') === null) { state.selected = -1; return redraw(); }
  state.selected = k;
  state.drag = { k, how: t.dataset.h || 'move', from: svgPoint(evt), start: state.grasps[k].slice() };
  evt.preventDefault();
  redraw();
}

function onMove(evt) {
  state.mouse = svgPoint(evt);
  const under = document.elementsFromPoint(evt.clientX, evt.clientY)
    .find((e) => e.dataset && e.dataset.c !== undefined);
  state.hoverCand = under ? +under.dataset.c : -1;
  const d = state.drag;
  if (!d) return;
  const [mx, my] = state.mouse, g = state.grasps[d.k], s = d.start;
  if (d.how === 'move') { g[0] = s[0] + mx - d.from[0]; g[1] = s[1] + my - d.from[1]; }
  if (d.how === 'turn') g[2] = normalise(Math.atan2(my - s[1], mx - s[0]));
  if (d.how === 'open') {
    const along = (mx - s[0]) * Math.cos(s[2]) + (my - s[1]) * Math.sin(s[2]);
    g[3] = Math.max(2, 2 * Math.abs(along));
  }
  d.moved = true;
  redraw();
}

async function onUp() {
  const d = state.drag;
  state.drag = null;
  if (d && d.moved) await save(state.item.verdict);
}

$('show').onchange = loadGrid;
document.addEventListener('keydown', onKey);
$('view').addEventListener('mousedown', onDown);
document.addEventListener('mousemove', (e) => { if (!$('item').hidden) onMove(e); });
document.addEventListener('mouseup', onUp);
loadGrid().then(() => {
  const m = location.hash.match(/^#\/item\/(\d+)/);
  if (m) openItem(state.items.findIndex((it) => it.index === +m[1]));
}).catch((e) => say(e.message));
