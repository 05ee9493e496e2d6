// BigFS console: a single page over the gateway's JSON API (see gateway/src/console/mod.rs).
// Plain JavaScript, no framework and no build step: the gateway embeds this file as it is.
// Views follow the URL's hash: #/ (overview), #/files/PATH (a directory), #/file/PATH (a file).
'use strict';

const POLL_MS = 2000;
const PER_PAGE = 200;

// ------------------------------------------------------------------ helpers

/** An element with attributes and children; text is always set as text, never as HTML. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'style') node.setAttribute('style', value);
    else node.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
function bytes(n) {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) { v /= 1024; i++; }
  return i === 0 ? `${n} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${UNITS[i]}`;
}
const count = (n) => Number(n).toLocaleString('en-US');
function when(ms) {
  if (!ms) return '—';
  const d = new Date(ms);
  const pad = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
function ago(ms) {
  if (ms < 1000) return `${(ms / 1000).toFixed(1)} s ago`;
  if (ms < 120000) return `${Math.round(ms / 1000)} s ago`;
  if (ms < 7200000) return `${Math.round(ms / 60000)} min ago`;
  return `${Math.round(ms / 3600000)} h ago`;
}

function usageBar(used, capacity) {
  const pct = capacity > 0 ? Math.min(100, (used / capacity) * 100) : 0;
  const level = pct >= 95 ? 'full' : pct >= 80 ? 'high' : '';
  return el('div', { class: 'usage' },
    el('div', { class: `bar ${level}`, title: `${pct.toFixed(1)} % used` },
      el('span', { style: `width:${pct.toFixed(2)}%` })),
    el('span', { class: 'num' }, `${bytes(used)} / ${bytes(capacity)}`));
}

/** A path's parts: '/a/b' → ['a', 'b']. */
const parts = (path) => path.split('/').filter(Boolean);
const join = (dir, name) => (dir === '/' ? '' : dir) + '/' + name;
const parentOf = (path) => '/' + parts(path).slice(0, -1).join('/');
const hashPath = (path) => parts(path).map(encodeURIComponent).join('/');
const filesHref = (path) => `#/files/${hashPath(path)}`;
const fileHref = (path) => `#/file/${hashPath(path)}`;
const downloadHref = (path) => `/api/download?path=${encodeURIComponent(path)}`;

/** A JSON API call; a failure throws an Error carrying the server's message and status. */
async function api(method, url) {
  let response;
  try {
    // The header tells the gateway the request comes from this page (see console/guard.rs).
    response = await fetch(url, { method, headers: { Accept: 'application/json', 'X-BigFS-Console': '1' } });
  } catch (e) {
    throw Object.assign(new Error('cannot reach the gateway (is it running?)'), { status: 0 });
  }
  let body = null;
  try { body = await response.json(); } catch (e) { /* not JSON: use the status line */ }
  if (!response.ok) {
    const message = (body && body.error) || `${response.status} ${response.statusText}`;
    throw Object.assign(new Error(message), { status: response.status });
  }
  return body;
}

// ------------------------------------------------------------------ toasts and dialogs

function toast(kind, title, text) {
  const box = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    el('div', {},
      el('div', { class: 'toast-title' }, title),
      text ? el('div', { class: 'toast-body' }, text) : null),
    el('button', { type: 'button', 'aria-label': 'Dismiss', onclick: () => box.remove() }, '×'));
  document.getElementById('toasts').append(box);
  setTimeout(() => box.remove(), kind === 'error' ? 12000 : 4000);
}
const fail = (title) => (e) => toast('error', title, e.message);

/**
 * Asks in a modal; resolves to the input's value (or true without an input), or null when
 * cancelled. `danger` paints the OK button red.
 */
function ask({ title, text, input, ok, danger }) {
  const modal = document.getElementById('modal');
  const field = document.getElementById('modal-input');
  const okButton = document.getElementById('modal-ok');
  document.getElementById('modal-title').textContent = title;
  document.getElementById('modal-text').textContent = text || '';
  field.hidden = input === undefined;
  field.value = input || '';
  okButton.textContent = ok || 'OK';
  okButton.className = danger ? 'btn btn-danger solid' : 'btn btn-primary';
  modal.hidden = false;
  (input === undefined ? okButton : field).focus();
  if (input) field.setSelectionRange(0, input.lastIndexOf('.') > 0 ? input.lastIndexOf('.') : input.length);
  return new Promise((resolve) => {
    const form = document.getElementById('modal-form');
    const cancel = document.getElementById('modal-cancel');
    const done = (value) => {
      modal.hidden = true;
      form.removeEventListener('submit', submit);
      cancel.removeEventListener('click', dismiss);
      modal.removeEventListener('keydown', escape);
      resolve(value);
    };
    const submit = (e) => { e.preventDefault(); done(input === undefined ? true : field.value); };
    const dismiss = () => done(null);
    const escape = (e) => { if (e.key === 'Escape') done(null); };
    form.addEventListener('submit', submit);
    cancel.addEventListener('click', dismiss);
    modal.addEventListener('keydown', escape);
  });
}

// ------------------------------------------------------------------ header and polling

let latest = null; // the last overview, for the header and the overview page

function renderGlance(overview, error) {
  const pill = document.getElementById('health-pill');
  const unreachable = document.getElementById('unreachable-banner');
  const safeMode = document.getElementById('safe-mode-banner');
  if (error) {
    pill.className = 'pill pill-unreachable';
    pill.textContent = 'unreachable';
    unreachable.hidden = false;
    unreachable.textContent = `The cluster does not answer: ${error.message}`;
    return;
  }
  unreachable.hidden = true;
  const verdict = overview.verdict;
  pill.className = `pill pill-${verdict}`;
  pill.textContent = verdict + (overview.problems ? ` · ${overview.problems}` : '');
  const alive = overview.nodes.filter((n) => n.state === 'alive').length;
  document.getElementById('glance-nodes').textContent = `${alive}/${overview.nodes.length} nodes alive`;
  document.getElementById('glance-usage').textContent =
    `${bytes(overview.used)} of ${bytes(overview.capacity)} used`;
  safeMode.hidden = !overview.safe_mode;
  if (overview.safe_mode) {
    const waiting = overview.safe_mode_waiting_for;
    safeMode.textContent = 'Safe mode: no repair or deletion yet' +
      (waiting.length ? `; waiting for ${waiting.join(', ')} to report` : '') +
      (overview.safe_mode_left_ms ? `, at most ${Math.ceil(overview.safe_mode_left_ms / 1000)} s more` : '') + '.';
  }
}

async function poll() {
  try {
    // A tab nobody looks at asks nothing: each overview costs the cluster a pass over its
    // chunk table.
    if (!document.hidden) {
      try {
        latest = await api('GET', '/api/overview');
        renderGlance(latest, null);
      } catch (e) {
        latest = null;
        renderGlance(null, e);
      }
      if (route().view === 'overview') renderOverview();
    }
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

// ------------------------------------------------------------------ overview

function card(label, value, detail, extra) {
  return el('div', { class: 'card' },
    el('div', { class: 'label' }, label),
    el('div', { class: 'value' }, value),
    detail ? el('div', { class: 'detail' }, detail) : null,
    extra || null);
}

function renderOverview() {
  const view = document.getElementById('view');
  if (!latest) {
    if (!view.querySelector('#overview')) {
      view.replaceChildren(el('div', { class: 'empty', id: 'overview-waiting' }, 'Waiting for the metadata server…'));
    }
    return;
  }
  const o = latest;
  const states = {};
  for (const n of o.nodes) states[n.state] = (states[n.state] || 0) + 1;
  const stateText = Object.entries(states).map(([s, c]) => `${c} ${s}`).join(', ') || 'no nodes';
  const pct = o.capacity ? ((o.used / o.capacity) * 100).toFixed(1) : '0.0';
  const cls = (n, kind) => (n > 0 ? kind : null);
  const health = el('div', { class: 'health-grid', id: 'chunk-health' },
    el('div', {}, el('span', {}, 'healthy'), el('b', { 'data-count': 'healthy' }, count(o.healthy))),
    el('div', { class: cls(o.under_replicated, 'warn') }, el('span', {}, 'under-replicated'),
      el('b', { 'data-count': 'under_replicated' }, count(o.under_replicated))),
    el('div', { class: cls(o.missing, 'bad') }, el('span', {}, 'missing'), el('b', { 'data-count': 'missing' }, count(o.missing))),
    el('div', { class: cls(o.corrupt, 'bad') }, el('span', {}, 'corrupt'), el('b', { 'data-count': 'corrupt' }, count(o.corrupt))));

  const rows = o.nodes.map((n) => el('tr', { 'data-node': n.id },
    el('td', { class: 'name mono' }, n.id),
    el('td', { class: 'mono muted hide-narrow' }, n.addr),
    el('td', {}, el('span', { class: `badge badge-${n.state}`, 'data-state': n.state }, n.state)),
    el('td', { class: 'num' }, ago(n.last_heartbeat_ms)),
    el('td', {}, usageBar(n.used, n.capacity)),
    el('td', { class: 'num' }, count(n.chunks))));

  const problems = o.problem_list.length === 0 ? null : el('section', { class: 'panel' },
    el('div', { class: 'panel-head' }, el('h2', {}, 'Problem chunks'),
      el('span', { class: 'muted' }, `${count(o.problem_chunks)} in all${o.problem_chunks > o.problem_list.length ? `, first ${o.problem_list.length} shown` : ''}`)),
    el('div', { class: 'scroll' }, el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'State'), el('th', {}, 'Chunk'), el('th', { class: 'num' }, 'Copies'), el('th', {}, 'A file using it'))),
      el('tbody', {}, o.problem_list.map((p) => el('tr', {},
        el('td', {}, el('span', { class: `badge ${p.state === 'under_replicated' ? 'badge-suspect' : 'badge-dead'}` }, p.state.replace('_', '-'))),
        el('td', { class: 'mono' }, p.chunk_id.slice(0, 16) + '…'),
        el('td', { class: 'num' }, `${p.live_copies} / ${p.wanted_copies}`),
        el('td', { class: 'name' }, el('a', { href: fileHref(p.path) }, p.path))))))));

  const page = el('div', { id: 'overview' },
    el('h1', {}, 'Cluster overview'),
    el('p', { class: 'subtitle' }, 'Refreshes every 2 seconds — the same numbers as ',
      el('code', {}, 'bigfs nodes'), ' and ', el('code', {}, 'bigfs fsck'), '.'),
    el('div', { class: 'cards' },
      card('Storage nodes', `${states.alive || 0} / ${o.nodes.length}`, stateText),
      card('Capacity', `${pct} %`, `${bytes(o.used)} of ${bytes(o.capacity)} used`, el('div', { style: 'margin-top:10px' }, usageBar(o.used, o.capacity).firstChild)),
      card('Files', count(o.files), `${count(o.chunks)} chunks`),
      card('Chunk health', o.verdict, null, health),
      card('Repairs in flight', count(o.repairs_in_flight), o.safe_mode ? 'safe mode: repairs wait' : (o.repairs_in_flight ? 'copies being made now' : 'nothing to repair'))),
    el('section', { class: 'panel' },
      el('div', { class: 'panel-head' }, el('h2', {}, 'Storage nodes'), el('span', { class: 'muted' }, stateText)),
      el('div', { class: 'scroll' }, el('table', { id: 'nodes-table' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Node'), el('th', { class: 'hide-narrow' }, 'Address'), el('th', {}, 'State'),
          el('th', { class: 'num' }, 'Last heartbeat'), el('th', {}, 'Used / capacity'), el('th', { class: 'num' }, 'Chunks'))),
        el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: 6, class: 'empty' }, 'No storage node has registered yet.')))))),
    problems);
  view.replaceChildren(page);
}

// ------------------------------------------------------------------ file browser

let uploadQueue = Promise.resolve(); // uploads run one after another, to bound the gateway's memory
// The uploads of this visit, kept across re-renders of the listing (each upload re-lists).
const uploads = el('div', { class: 'uploads', id: 'uploads', hidden: true });

function crumbs(path, last) {
  const items = [el('a', { href: filesHref('/') }, 'root')];
  const ps = parts(path);
  ps.forEach((name, i) => {
    items.push(el('span', { class: 'sep' }, '/'));
    const sub = '/' + ps.slice(0, i + 1).join('/');
    items.push(i === ps.length - 1 && last ? el('span', { class: 'here' }, name) : el('a', { href: filesHref(sub) }, name));
  });
  return el('nav', { class: 'crumbs', id: 'breadcrumb', 'aria-label': 'Breadcrumb' }, items);
}

async function renderFiles(path, page) {
  const view = document.getElementById('view');
  const generation = renders;
  let listing;
  try {
    listing = await api('GET', `/api/list?path=${encodeURIComponent(path)}&page=${page}&per_page=${PER_PAGE}`);
  } catch (e) {
    if (generation !== renders) return;
    view.replaceChildren(el('div', { id: 'files' }, el('h1', {}, 'Files'), crumbs(path, true),
      el('div', { class: 'panel', style: 'margin-top:16px' }, el('div', { class: 'empty', id: 'list-error' },
        `Cannot list ${path}: ${e.message}`))));
    toast('error', `Cannot list ${path}`, e.message);
    return;
  }
  // The user went elsewhere while the listing came: it is not wanted any more.
  if (generation !== renders) return;
  if (listing.is_file) { location.replace(fileHref(path)); return; }

  // An upload or a rename finishing later reloads this listing only if it is still shown.
  const reload = () => {
    const now = route();
    if (now.view === 'files' && now.path === path && now.page === page) show();
  };
  const fileInput = el('input', { type: 'file', id: 'file-input', multiple: true, hidden: true,
    onchange: (e) => { startUploads(path, [...e.target.files], uploads, reload); e.target.value = ''; } });

  const rows = listing.items.map((entry) => el('tr', { 'data-path': entry.path, 'data-kind': entry.is_dir ? 'dir' : 'file' },
    el('td', { class: 'name' }, el('span', { class: `icon ${entry.is_dir ? 'icon-dir' : 'icon-file'}`, 'aria-hidden': 'true' }),
      el('a', { href: entry.is_dir ? filesHref(entry.path) : fileHref(entry.path), class: 'entry-link' }, entry.name)),
    el('td', { class: 'num' }, entry.is_dir ? '—' : bytes(entry.size)),
    el('td', { class: 'num hide-narrow' }, when(entry.mtime_ms)),
    el('td', { class: 'num hide-narrow' }, entry.is_dir ? '—' : `×${entry.replication}`),
    el('td', { class: 'row-actions' },
      entry.is_dir ? null : el('a', { class: 'btn download', href: downloadHref(entry.path), download: entry.name }, 'Download'),
      ' ', el('button', { class: 'btn rename', type: 'button', onclick: () => renameEntry(entry.path, reload) }, 'Rename'),
      ' ', el('button', { class: 'btn btn-danger delete', type: 'button', onclick: () => deleteEntry(entry, reload) }, 'Delete'))));

  const first = (listing.page - 1) * listing.per_page;
  const pager = listing.pages <= 1 ? null : el('div', { class: 'pager', id: 'pager' },
    el('span', {}, `${count(first + 1)}–${count(first + listing.items.length)} of ${count(listing.total)}`),
    el('button', { class: 'btn', type: 'button', id: 'page-prev', disabled: listing.page <= 1, onclick: () => go(path, page - 1) }, '← Previous'),
    el('span', {}, `page ${listing.page} of ${listing.pages}`),
    el('button', { class: 'btn', type: 'button', id: 'page-next', disabled: listing.page >= listing.pages, onclick: () => go(path, page + 1) }, 'Next →'));

  const panel = el('section', { class: 'panel dropzone', id: 'dropzone' },
    el('div', { class: 'panel-head' }, crumbs(path, true), el('span', { class: 'spacer' }),
      el('span', { class: 'muted' }, `${count(listing.total)} ${listing.total === 1 ? 'entry' : 'entries'}`),
      el('button', { class: 'btn', type: 'button', id: 'new-folder', onclick: () => newFolder(path, reload) }, '+ New folder'),
      el('button', { class: 'btn btn-primary', type: 'button', id: 'upload-button', onclick: () => fileInput.click() }, '⇪ Upload'),
      fileInput),
    uploads,
    el('div', { class: 'scroll' }, el('table', { id: 'listing' },
      el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', { class: 'num' }, 'Size'), el('th', { class: 'num hide-narrow' }, 'Modified'),
        el('th', { class: 'num hide-narrow' }, 'Replication'), el('th', {}))),
      el('tbody', {}, rows.length ? rows : el('tr', {}, el('td', { colspan: 5, class: 'empty' },
        listing.total ? 'No entries on this page.' : 'This directory is empty. Drop files here or use Upload.'))))),
    pager);
  for (const type of ['dragenter', 'dragover']) {
    panel.addEventListener(type, (e) => { e.preventDefault(); panel.classList.add('dragging'); });
  }
  panel.addEventListener('dragleave', (e) => { if (!panel.contains(e.relatedTarget)) panel.classList.remove('dragging'); });
  panel.addEventListener('drop', (e) => {
    e.preventDefault();
    panel.classList.remove('dragging');
    startUploads(path, [...e.dataTransfer.files], uploads, reload);
  });
  view.replaceChildren(el('div', { id: 'files' }, el('h1', {}, 'Files'),
    el('p', { class: 'subtitle' }, 'Browse, upload and download. Uploads stream into the cluster as they are sent.'), panel));
}

function go(path, page) {
  location.hash = filesHref(path) + (page > 1 ? `?page=${page}` : '');
  window.scrollTo(0, 0); // the pager is at the bottom; a new page starts at its top
}

function startUploads(dir, files, box, reload) {
  if (!files.length) return;
  box.hidden = false;
  for (const file of files) {
    const row = uploadRow(dir, file);
    box.append(row.node);
    uploadQueue = uploadQueue.then(() => upload(dir, file, row, false, reload));
  }
}

function uploadRow(dir, file) {
  const fill = el('span', { style: 'width:0%' });
  const state = el('span', { class: 'upload-state' }, 'waiting');
  const action = el('span', {});
  const node = el('div', { class: 'upload', 'data-name': file.name },
    el('span', { class: 'upload-name', title: join(dir, file.name) }, file.name),
    el('div', { class: 'bar' }, fill), state, action);
  return {
    node,
    progress(loaded, total) {
      const pct = total ? (loaded / total) * 100 : 100;
      fill.style.width = `${pct.toFixed(1)}%`;
      state.textContent = `${bytes(loaded)} of ${bytes(total)}`;
    },
    finish(kind, text, button) {
      node.classList.remove('done', 'failed');
      node.classList.add(kind);
      if (kind === 'done') fill.style.width = '100%';
      state.textContent = text;
      state.title = text;
      action.replaceChildren(button || '');
    },
  };
}

/** Sends one file; resolves when it is stored or has failed (failures show, never throw). */
async function upload(dir, file, row, overwrite, reload) {
  const path = join(dir, file.name);
  // Asked first: a refusal sent while a big body is still on its way reaches the browser as
  // a lost connection, not as the answer.
  if (!overwrite && await exists(path)) {
    refuseExisting(dir, file, row, path, `${path} already exists`, reload);
    return;
  }
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    xhr.open('PUT', `/api/file?path=${encodeURIComponent(path)}${overwrite ? '&overwrite=true' : ''}`);
    xhr.setRequestHeader('Content-Type', 'application/octet-stream');
    xhr.setRequestHeader('X-BigFS-Console', '1');
    xhr.upload.onprogress = (e) => row.progress(e.loaded, e.lengthComputable ? e.total : file.size);
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (e) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) {
        row.finish('done', `stored, ${bytes(file.size)}`);
        reload();
      } else if (xhr.status === 409) {
        refuseExisting(dir, file, row, path, (body && body.error) || 'it already exists', reload);
      } else {
        const message = (body && body.error) || `${xhr.status} ${xhr.statusText}`;
        row.finish('failed', message);
        toast('error', `Upload of ${file.name} failed`, message);
      }
      resolve();
    };
    xhr.onerror = () => {
      row.finish('failed', 'connection to the gateway lost');
      toast('error', `Upload of ${file.name} failed`, 'the connection to the gateway was lost');
      resolve();
    };
    row.progress(0, file.size);
    xhr.send(file);
  });
}

/** Whether a file is at `path` (a failed lookup counts as no: the upload then says why). */
async function exists(path) {
  try {
    await api('GET', `/api/file?path=${encodeURIComponent(path)}`);
    return true;
  } catch (e) {
    return false;
  }
}

/** Shows an upload refused because `path` exists, with a way to replace it. */
function refuseExisting(dir, file, row, path, message, reload) {
  const replace = el('button', { class: 'btn btn-danger replace', type: 'button', onclick: async () => {
    const ok = await ask({ title: `Replace ${file.name}?`, text: `${path} exists. Its content will be replaced by the file you chose.`, ok: 'Replace', danger: true });
    if (ok) uploadQueue = uploadQueue.then(() => upload(dir, file, row, true, reload));
  } }, 'Replace…');
  row.finish('failed', `not uploaded: ${message}`, replace);
  toast('error', `${file.name} was not uploaded`, `${message}. Use “Replace…” to overwrite it.`);
}

async function newFolder(dir, reload) {
  const name = await ask({ title: 'New folder', text: `Create a folder in ${dir}`, input: '', ok: 'Create' });
  if (name === null) return;
  try {
    const made = await api('POST', `/api/mkdir?dir=${encodeURIComponent(dir)}&name=${encodeURIComponent(name)}`);
    toast('success', 'Folder created', made.path);
    reload();
  } catch (e) { toast('error', 'Cannot create the folder', e.message); }
}

async function renameEntry(path, after) {
  const old = parts(path).pop();
  const name = await ask({ title: `Rename ${old}`, text: `A new name, in ${parentOf(path)}`, input: old, ok: 'Rename' });
  if (name === null || name === old) return;
  try {
    const moved = await api('POST', `/api/rename?path=${encodeURIComponent(path)}&name=${encodeURIComponent(name)}`);
    toast('success', 'Renamed', `${path} → ${moved.to}`);
    after(moved.to);
  } catch (e) { toast('error', `Cannot rename ${old}`, e.message); }
}

async function deleteEntry(entry, after) {
  const text = entry.is_dir
    ? `${entry.path} and every file below it will be removed. This cannot be undone.`
    : `${entry.path} will be removed. This cannot be undone.`;
  const ok = await ask({ title: `Delete ${entry.is_dir ? 'folder' : 'file'} ${parts(entry.path).pop()}?`, text, ok: 'Delete', danger: true });
  if (!ok) return;
  try {
    await api('DELETE', `/api/file?path=${encodeURIComponent(entry.path)}&recursive=${entry.is_dir}`);
    toast('success', 'Deleted', entry.path);
  } catch (e) {
    toast('error', `Cannot delete ${entry.path}`, e.message);
  }
  after();
}

// ------------------------------------------------------------------ file details

async function renderFile(path) {
  const view = document.getElementById('view');
  const generation = renders;
  let file;
  try {
    file = await api('GET', `/api/file?path=${encodeURIComponent(path)}`);
  } catch (e) {
    if (generation !== renders) return;
    view.replaceChildren(el('div', { id: 'file' }, el('h1', {}, parts(path).pop() || '/'), crumbs(path, true),
      el('div', { class: 'panel', style: 'margin-top:16px' }, el('div', { class: 'empty', id: 'file-error' }, `Cannot show ${path}: ${e.message}`))));
    toast('error', `Cannot show ${path}`, e.message);
    return;
  }
  const name = parts(path).pop();
  const fact = (label, value, cls, wide) => el('div', { class: wide }, el('dt', {}, label), el('dd', { class: cls }, value));
  const chunks = file.chunks.map((c) => el('tr', { 'data-chunk': c.index },
    el('td', { class: 'num' }, c.index),
    el('td', { class: 'mono', title: c.id }, c.id.slice(0, 24) + '…'),
    el('td', { class: 'num' }, bytes(c.size)),
    el('td', {}, el('div', { class: 'nodes-list' }, c.replicas.length
      ? c.replicas.map((id) => el('span', { class: 'badge badge-node' }, id))
      : el('span', { class: 'badge badge-dead' }, 'no live copy')))));
  const back = () => (location.hash = filesHref(parentOf(path)));
  view.replaceChildren(el('div', { id: 'file' },
    el('h1', {}, name),
    el('p', { class: 'subtitle' }, crumbs(path, true)),
    el('section', { class: 'panel' },
      el('div', { class: 'panel-head' }, el('h2', {}, 'Details'), el('span', { class: 'spacer' }),
        el('a', { class: 'btn btn-primary download', id: 'download-link', href: downloadHref(path), download: name }, '⇩ Download'),
        el('button', { class: 'btn rename', type: 'button', onclick: () => renameEntry(path, (to) => (location.hash = fileHref(to))) }, 'Rename'),
        el('button', { class: 'btn btn-danger delete', type: 'button', onclick: () => deleteEntry({ path, is_dir: false }, back) }, 'Delete')),
      el('dl', { class: 'details' },
        fact('Size', `${bytes(file.size)} (${count(file.size)} bytes)`),
        fact('Modified', when(file.mtime_ms)),
        fact('Replication', `${file.replication} copies`),
        fact('Chunks', `${count(file.chunks.length)} × up to ${bytes(file.chunk_size)}`),
        fact('Version', file.version),
        fact('Mode', file.mode ? '0' + file.mode.toString(8) : '—'),
        fact('Content hash (BLAKE3)', file.content_hash, 'mono', 'wide'))),
    el('section', { class: 'panel' },
      el('div', { class: 'panel-head' }, el('h2', {}, 'Chunks'), el('span', { class: 'muted' }, 'and the live nodes holding each copy')),
      el('div', { class: 'scroll' }, el('table', { id: 'chunks' },
        el('thead', {}, el('tr', {}, el('th', { class: 'num' }, '#'), el('th', {}, 'Chunk id'), el('th', { class: 'num' }, 'Size'), el('th', {}, 'Nodes'))),
        el('tbody', {}, chunks.length ? chunks : el('tr', {}, el('td', { colspan: 4, class: 'empty' }, 'An empty file has no chunks.'))))))));
}

// ------------------------------------------------------------------ routing

function route() {
  // Split before decoding: a name's own '?' or '/' arrives percent-encoded (see hashPath).
  const raw = location.hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  const where = q < 0 ? raw : raw.slice(0, q);
  const page = Number(new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)).get('page')) || 1;
  // A malformed escape (typed by hand) stays as it is rather than breaking the page.
  const decode = (part) => { try { return decodeURIComponent(part); } catch (e) { return part; } };
  const pathFrom = (rest) => '/' + rest.split('/').filter(Boolean).map(decode).join('/');
  if (where === '/files' || where.startsWith('/files/')) return { view: 'files', path: pathFrom(where.slice(6)), page };
  if (where.startsWith('/file/')) return { view: 'file', path: pathFrom(where.slice(5)) };
  return { view: 'overview' };
}

/** Counts the views shown, so that an answer for one the user left is dropped. */
let renders = 0;

function show() {
  renders += 1;
  const r = route();
  document.getElementById('tab-overview').classList.toggle('active', r.view === 'overview');
  document.getElementById('tab-files').classList.toggle('active', r.view !== 'overview');
  document.title = r.view === 'overview' ? 'BigFS console' : `${r.path} · BigFS console`;
  if (r.view === 'files') renderFiles(r.path, r.page).catch(fail('The page failed'));
  else if (r.view === 'file') renderFile(r.path).catch(fail('The page failed'));
  else renderOverview();
}

window.addEventListener('hashchange', show);
window.addEventListener('error', (e) => toast('error', 'The page hit an error', e.message));
window.addEventListener('unhandledrejection', (e) => toast('error', 'The page hit an error', String(e.reason && e.reason.message || e.reason)));
show();
poll();
