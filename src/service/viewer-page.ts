/**
 * The live viewer served on `/`: one self-contained page (inline CSS and JS, no build step, no
 * CDN), so it works offline and ships inside `dist` with plain `tsc`.
 *
 * It opens `/ws` on its own origin (passing on `?token=` from its URL; `?streams=a,b` limits the
 * streams), subscribes to stats, frames, classes and events, and shows per stream: the overlay,
 * a source-state badge, fps, dropped and skipped frames, and a stacked chart of class shares over
 * the last 60 s; plus a shared legend whose names can be edited (a rename goes out as a control
 * message and every open viewer updates) and a pause/resume learning switch.
 *
 * Kept as String.raw so backslashes in the page script survive; the page must not contain a
 * backtick or a dollar-brace.
 */
export const VIEWER_HTML = String.raw`<!doctype html>
<html lang="en">
<head>
<link rel="icon" href="data:,">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>stegostream · live</title>
<style>
  :root {
    --bg: #0a141c; --panel: #111f2a; --panel-2: #162734; --line: #223747; --text: #dbe6ee;
    --muted: #8aa0b0; --accent: #3cc6c0; --ok: #3ecf7a; --warn: #f0b43c; --bad: #ef5f5f; --idle: #7d8b96;
    --radius: 10px;
    font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
    color-scheme: dark;
  }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--text); font-size: 14px; }
  header {
    display: flex; align-items: center; gap: 18px; padding: 12px 20px;
    background: linear-gradient(180deg, #0f2230, #0c1a24); border-bottom: 1px solid var(--line);
    position: sticky; top: 0; z-index: 2;
  }
  header h1 { margin: 0; font-size: 17px; font-weight: 650; letter-spacing: .3px; }
  header h1 span { color: var(--accent); }
  .pill { display: inline-flex; align-items: center; gap: 7px; padding: 4px 10px; border-radius: 999px;
          background: var(--panel-2); border: 1px solid var(--line); color: var(--muted); font-size: 12.5px; white-space: nowrap; }
  .pill b { color: var(--text); font-weight: 600; }
  .dot { width: 8px; height: 8px; border-radius: 50%; background: var(--idle); }
  .dot.ok { background: var(--ok); box-shadow: 0 0 6px var(--ok); }
  .dot.warn { background: var(--warn); }
  .dot.bad { background: var(--bad); }
  .spacer { flex: 1; }
  button {
    font: inherit; font-size: 12.5px; color: var(--text); background: var(--panel-2); border: 1px solid var(--line);
    border-radius: 7px; padding: 5px 11px; cursor: pointer;
  }
  button:hover { border-color: var(--accent); }
  button:disabled { opacity: .5; cursor: default; }
  main { display: grid; grid-template-columns: minmax(0, 1fr) 300px; gap: 18px; padding: 18px 20px; align-items: start; }
  @media (max-width: 900px) { main { grid-template-columns: minmax(0, 1fr); } }
  #streams { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 18px; }
  .empty { color: var(--muted); padding: 50px 10px; text-align: center; border: 1px dashed var(--line); border-radius: var(--radius); }
  .card { background: var(--panel); border: 1px solid var(--line); border-radius: var(--radius); overflow: hidden; }
  .card-head { display: flex; align-items: center; justify-content: space-between; gap: 10px; padding: 10px 14px; }
  .card-head h2 { margin: 0; font-size: 15px; font-weight: 600; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .badge { font-size: 11.5px; font-weight: 600; letter-spacing: .4px; text-transform: uppercase; padding: 3px 9px;
           border-radius: 999px; background: #24323d; color: var(--idle); white-space: nowrap; }
  .badge.live { background: rgba(62, 207, 122, .15); color: var(--ok); }
  .badge.connecting, .badge.retrying { background: rgba(240, 180, 60, .15); color: var(--warn); }
  .badge.stalled { background: rgba(239, 95, 95, .15); color: var(--bad); }
  .badge.stopped { background: #24323d; color: var(--idle); }
  .frame { position: relative; background: #05090c; aspect-ratio: 16 / 9; display: flex; align-items: center; justify-content: center; }
  .frame img { width: 100%; height: 100%; object-fit: contain; display: block; }
  .frame img:not([src]) { display: none; }
  .frame .placeholder { position: absolute; color: var(--muted); font-size: 13px; }
  .frame img[src] + .placeholder { display: none; }
  .metrics { display: grid; grid-template-columns: repeat(5, 1fr); border-top: 1px solid var(--line); }
  .metric { padding: 8px 12px; border-right: 1px solid var(--line); }
  .metric:last-child { border-right: 0; }
  .metric .k { display: block; color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .5px; }
  .metric .v { display: block; font-size: 15px; font-weight: 600; font-variant-numeric: tabular-nums; margin-top: 2px; }
  .chart-wrap { border-top: 1px solid var(--line); padding: 10px 12px 12px; }
  .chart-title { display: flex; justify-content: space-between; color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .5px; margin-bottom: 6px; }
  canvas.chart { width: 100%; height: 110px; display: block; }
  aside { background: var(--panel); border: 1px solid var(--line); border-radius: var(--radius); padding: 14px; position: sticky; top: 70px; }
  aside h2 { margin: 0 0 4px; font-size: 15px; font-weight: 600; }
  aside p.hint { margin: 0 0 12px; color: var(--muted); font-size: 12px; }
  .legend { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 6px; }
  .legend li { display: grid; grid-template-columns: 18px 22px minmax(0, 1fr) 64px; align-items: center; gap: 8px; }
  .swatch { width: 18px; height: 18px; border-radius: 5px; border: 1px solid rgba(255, 255, 255, .18); }
  .cid { color: var(--muted); font-size: 11.5px; font-variant-numeric: tabular-nums; text-align: right; }
  .legend input {
    width: 100%; font: inherit; color: var(--text); background: transparent; border: 1px solid transparent;
    border-radius: 6px; padding: 4px 6px;
  }
  .legend input:hover { border-color: var(--line); }
  .legend input:focus { outline: none; border-color: var(--accent); background: var(--panel-2); }
  .legend input.pending { border-color: var(--warn); }
  .share { position: relative; height: 18px; background: #0c1822; border-radius: 4px; overflow: hidden; }
  .share i { position: absolute; inset: 0 auto 0 0; background: rgba(60, 198, 192, .35); }
  .share span { position: relative; display: block; text-align: right; padding-right: 4px; font-size: 11px; line-height: 18px; font-variant-numeric: tabular-nums; }
  #toast { position: fixed; right: 20px; bottom: 20px; display: flex; flex-direction: column; gap: 8px; z-index: 5; }
  .toast { background: #2a1719; border: 1px solid var(--bad); color: var(--text); padding: 9px 13px; border-radius: 8px; max-width: 420px; font-size: 13px; }
  .toast.info { background: var(--panel-2); border-color: var(--accent); }
</style>
</head>
<body>
<header>
  <h1>stego<span>stream</span></h1>
  <span class="pill" id="conn"><span class="dot"></span><span class="txt">connecting</span></span>
  <span class="pill">head <b id="head">–</b></span>
  <span class="pill">learning <b id="learning">–</b></span>
  <span class="spacer"></span>
  <button id="learn-toggle" type="button">Pause learning</button>
</header>
<main>
  <section id="streams"><div class="empty" id="empty">Waiting for streams…</div></section>
  <aside>
    <h2>Classes</h2>
    <p class="hint">Click a name to rename it; every viewer sees the change.</p>
    <ul class="legend" id="legend"></ul>
  </aside>
</main>
<div id="toast"></div>
<script>
(function () {
  'use strict';
  var WINDOW_MS = 60000;
  var params = new URLSearchParams(location.search);
  var token = params.get('token');
  var wanted = (params.get('streams') || '*').split(',').map(function (s) { return s.trim(); }).filter(Boolean);

  var streams = new Map();          // name -> per-stream view state
  var legend = { classes: [], headVersion: -1 };
  var ws = null, reqId = 0, retryMs = 1000, learning = null;
  var pending = new Map();          // control request id -> { onOk, onError }
  var decoder = new TextDecoder();

  var el = function (id) { return document.getElementById(id); };
  function make(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function rgb(c) { return 'rgb(' + c[0] + ',' + c[1] + ',' + c[2] + ')'; }
  function rgba(c, a) { return 'rgba(' + c[0] + ',' + c[1] + ',' + c[2] + ',' + a + ')'; }

  function toast(text, info) {
    var t = make('div', 'toast' + (info ? ' info' : ''), text);
    el('toast').appendChild(t);
    setTimeout(function () { t.remove(); }, info ? 2500 : 6000);
  }

  // ---- connection ---------------------------------------------------------------------------
  function setConn(kind, text) {
    var c = el('conn');
    c.querySelector('.dot').className = 'dot ' + kind;
    c.querySelector('.txt').textContent = text;
  }

  function connect() {
    var url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
    if (token) url += '?token=' + encodeURIComponent(token);
    setConn('warn', 'connecting');
    ws = new WebSocket(url);
    ws.binaryType = 'arraybuffer';
    ws.onopen = function () {
      retryMs = 1000;
      setConn('ok', 'connected');
      send({ type: 'subscribe', streams: wanted, channels: ['stats', 'frames', 'classes', 'events'] });
      control('status', {}, function (r) {
        if (r.status && typeof r.status.learning === 'string') setLearning(r.status.learning);
      });
    };
    ws.onmessage = function (m) {
      if (typeof m.data === 'string') onText(JSON.parse(m.data));
      else onImage(m.data);
    };
    ws.onclose = function (e) {
      pending.clear();
      var secs = Math.round(retryMs / 1000);
      setConn('bad', (e.code === 1001 ? 'server stopped' : 'disconnected') + ' · retry in ' + secs + ' s');
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 10000);
    };
  }

  function send(msg) {
    if (ws && ws.readyState === WebSocket.OPEN) { ws.send(JSON.stringify(msg)); return true; }
    return false;
  }

  function control(verb, args, onOk, onError) {
    var id = ++reqId;
    var msg = { type: 'control', id: id, verb: verb };
    for (var k in args) msg[k] = args[k];
    pending.set(id, { onOk: onOk, onError: onError });
    if (!send(msg)) { pending.delete(id); if (onError) onError({ message: 'not connected' }); }
  }

  // ---- messages -----------------------------------------------------------------------------
  function onText(m) {
    switch (m.type) {
      case 'stats': onStats(m); break;
      case 'classes': onClasses(m); break;
      case 'event': onEvent(m.event); break;
      case 'hello': m.streams.forEach(function (s) { if (follows(s)) view(s); }); break;
      case 'control-result': {
        var p = pending.get(m.id); pending.delete(m.id);
        if (m.verb === 'pause' || m.verb === 'resume') setLearning(m.learning);
        if (p && p.onOk) p.onOk(m);
        break;
      }
      case 'error': {
        var q = m.id !== undefined ? pending.get(m.id) : undefined;
        if (m.id !== undefined) pending.delete(m.id);
        if (q && q.onError) q.onError(m); else if (!q) toast(m.message);
        break;
      }
    }
  }

  function follows(name) { return wanted.indexOf('*') >= 0 || wanted.indexOf(name) >= 0; }

  // Times come from the stats (capturedAt, the server's clock), so charts and fps are right
  // however late messages arrive and whatever this machine's clock says.
  function onStats(s) {
    var v = view(s.stream);
    var t = s.capturedAt;
    v.lastCaptured = t;
    v.lastArrival = performance.now();
    v.times.push(t);
    while (v.times.length > 2 && t - v.times[0] > 2000) v.times.shift();
    v.stats = s;
    if (s.headVersion > v.headVersion) v.headVersion = s.headVersion;
    setHead(s.headVersion);
    var point = { t: t, f: {} };
    s.classes.forEach(function (c) {
      point.f[c.id] = c.fraction;
      v.colors[c.id] = c.color;
    });
    var h = v.history, last = h[h.length - 1];
    if (last && point.t - last.t < 100) h[h.length - 1] = point; else h.push(point);
    while (h.length && point.t - h[0].t > WINDOW_MS + 2000) h.shift();
  }

  function onClasses(m) {
    var v = view(m.stream);
    m.classes.forEach(function (c) { v.colors[c.id] = c.color; });
    if (m.headVersion >= legend.headVersion) {
      legend = { classes: m.classes, headVersion: m.headVersion };
      renderLegend();
    }
    setHead(m.headVersion);
  }

  function onEvent(e) {
    if (e.type === 'source-state') {
      var v = view(e.stream);
      var text = e.state;
      if (e.state === 'retrying' && e.attempt !== undefined) {
        text += ' #' + e.attempt + (e.delayMs !== undefined ? ' · ' + (e.delayMs / 1000).toFixed(1) + ' s' : '');
      }
      v.badge.className = 'badge ' + e.state;
      v.badge.textContent = text;
      v.badge.title = e.detail || '';
    } else if (e.type === 'counters') {
      var w = view(e.stream);
      w.pipelineDropped = e.counters.dropped;
    } else if (e.type === 'head-updated') {
      setHead(e.version);
    } else if (e.type === 'pipeline') {
      if (e.learning) setLearning(e.learning);
      if (e.state === 'failed') toast('Pipeline failed' + (e.detail ? ': ' + e.detail : ''));
    }
  }

  function onImage(buf) {
    var n = new DataView(buf).getUint32(0, false);
    var h = JSON.parse(decoder.decode(new Uint8Array(buf, 4, n)));
    if (h.channel !== 'frames') return;
    var v = view(h.stream);
    if (v.lastFrameSeq >= 0 && h.seq > v.lastFrameSeq + 1) v.skipped += h.seq - v.lastFrameSeq - 1;
    v.lastFrameSeq = h.seq;
    v.frames++;
    var url = URL.createObjectURL(new Blob([new Uint8Array(buf, 4 + n)], { type: h.mime }));
    // Show only the newest frame: while one decodes, later ones replace each other.
    if (v.loading) {
      if (v.next) { URL.revokeObjectURL(v.next.url); v.skipped++; }
      v.next = { url: url, h: h };
    } else {
      show(v, url, h);
    }
  }

  function show(v, url, h) {
    v.loading = true;
    v.img.onload = v.img.onerror = function () {
      if (v.shownUrl) URL.revokeObjectURL(v.shownUrl);
      v.shownUrl = url;
      v.img.dataset.seq = String(h.seq);
      v.img.dataset.frames = String(v.frames);
      v.loading = false;
      if (v.next) { var n = v.next; v.next = null; show(v, n.url, n.h); }
    };
    v.img.src = url;
    v.frame.style.aspectRatio = h.width + ' / ' + h.height;
  }

  // ---- per-stream cards ---------------------------------------------------------------------
  function view(name) {
    var v = streams.get(name);
    if (v) return v;
    var card = make('article', 'card');
    card.dataset.stream = name;
    var head = make('div', 'card-head');
    var title = make('h2', '', name); title.title = name;
    var badge = make('span', 'badge', 'waiting');
    head.appendChild(title); head.appendChild(badge);
    var frame = make('div', 'frame');
    var img = make('img'); img.alt = 'overlay of ' + name;
    frame.appendChild(img); frame.appendChild(make('div', 'placeholder', 'waiting for frames…'));
    var metrics = make('div', 'metrics');
    var cells = {};
    [
      ['fps', 'fps', 'frames segmented per second'],
      ['seq', 'frame', 'sequence number of the latest frame'],
      ['dropped', 'dropped', 'frames the pipeline dropped to keep up'],
      ['skipped', 'skipped', 'frames this viewer did not show (slow link or busy browser)'],
      ['head', 'head', 'version of the segmentation head']
    ].forEach(function (kv) {
      var m = make('div', 'metric');
      m.title = kv[2];
      m.appendChild(make('span', 'k', kv[1]));
      cells[kv[0]] = make('span', 'v', '–');
      cells[kv[0]].dataset.metric = kv[0];
      m.appendChild(cells[kv[0]]);
      metrics.appendChild(m);
    });
    var chartWrap = make('div', 'chart-wrap');
    var ct = make('div', 'chart-title');
    ct.appendChild(make('span', '', 'class share · last 60 s'));
    ct.appendChild(make('span', '', 'now'));
    var canvas = make('canvas', 'chart');
    chartWrap.appendChild(ct); chartWrap.appendChild(canvas);
    card.appendChild(head); card.appendChild(frame); card.appendChild(metrics); card.appendChild(chartWrap);

    v = {
      name: name, card: card, badge: badge, frame: frame, img: img, cells: cells, canvas: canvas,
      history: [], times: [], colors: {}, stats: null, headVersion: -1, lastCaptured: 0, lastArrival: 0,
      frames: 0, lastFrameSeq: -1, skipped: 0, pipelineDropped: null,
      loading: false, next: null, shownUrl: null
    };
    streams.set(name, v);
    var list = el('streams');
    el('empty').style.display = 'none';
    var after = null;
    list.querySelectorAll('.card').forEach(function (c) { if (!after && c.dataset.stream > name) after = c; });
    list.insertBefore(card, after);
    return v;
  }

  function fps(v) {
    var a = v.times;
    if (a.length < 2 || performance.now() - v.lastArrival > 2000 || a[a.length - 1] === a[0]) return null;
    return (a.length - 1) * 1000 / (a[a.length - 1] - a[0]);
  }

  function renderMetrics(v) {
    var f = fps(v);
    v.cells.fps.textContent = f === null ? '–' : f.toFixed(f < 10 ? 1 : 0);
    v.cells.seq.textContent = v.stats ? String(v.stats.seq) : '–';
    v.cells.dropped.textContent = v.pipelineDropped === null ? '–' : String(v.pipelineDropped);
    v.cells.skipped.textContent = String(v.skipped);
    v.cells.head.textContent = v.headVersion >= 0 ? 'v' + v.headVersion : '–';
  }

  // Stacked area of class fractions over the last 60 s; drawn by hand, no chart library.
  function drawChart(v) {
    var c = v.canvas, dpr = window.devicePixelRatio || 1;
    var w = Math.round(c.clientWidth * dpr), h = Math.round(c.clientHeight * dpr);
    if (!w || !h) return;
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    var g = c.getContext('2d');
    g.clearRect(0, 0, w, h);
    if (!v.stats) return;
    // The right edge is the newest frame's capture time, moving on in real time while none comes.
    var now = v.lastCaptured + (performance.now() - v.lastArrival), t0 = now - WINDOW_MS;
    var x = function (t) { return (t - t0) / WINDOW_MS * w; };
    var y = function (f) { return h - f * h; };
    g.strokeStyle = 'rgba(138, 160, 176, .16)';
    g.lineWidth = 1;
    for (var q = 1; q < 4; q++) { g.beginPath(); g.moveTo(0, Math.round(y(q / 4)) + .5); g.lineTo(w, Math.round(y(q / 4)) + .5); g.stroke(); }
    for (var s = 10; s < 60; s += 10) { var gx = Math.round(x(now - s * 1000)) + .5; g.beginPath(); g.moveTo(gx, 0); g.lineTo(gx, h); g.stroke(); }
    var pts = v.history.filter(function (p) { return p.t >= t0 - 1000; });
    if (pts.length < 2) return;
    var ids = Object.keys(v.colors).map(Number).sort(function (a, b) { return a - b; });
    var lower = pts.map(function () { return 0; });
    ids.forEach(function (id) {
      var upper = pts.map(function (p, i) { return lower[i] + (p.f[id] || 0); });
      var col = v.colors[id];
      g.beginPath();
      pts.forEach(function (p, i) { var px = x(p.t), py = y(upper[i]); if (i) g.lineTo(px, py); else g.moveTo(px, py); });
      for (var i = pts.length - 1; i >= 0; i--) g.lineTo(x(pts[i].t), y(lower[i]));
      g.closePath();
      g.fillStyle = rgba(col, 0.78);
      g.fill();
      g.beginPath();
      pts.forEach(function (p, i) { var px = x(p.t), py = y(upper[i]); if (i) g.lineTo(px, py); else g.moveTo(px, py); });
      g.strokeStyle = rgb(col);
      g.lineWidth = Math.max(1, dpr);
      g.stroke();
      lower = upper;
    });
  }

  // ---- legend -------------------------------------------------------------------------------
  function renderLegend() {
    var ul = el('legend');
    var rows = {};
    ul.querySelectorAll('li').forEach(function (li) { rows[li.dataset.classId] = li; });
    var seen = {};
    legend.classes.forEach(function (c, index) {
      seen[c.id] = true;
      var li = rows[c.id];
      if (!li) {
        li = make('li');
        li.dataset.classId = String(c.id);
        li.appendChild(make('span', 'swatch'));
        li.appendChild(make('span', 'cid', String(c.id)));
        var input = make('input');
        input.type = 'text'; input.maxLength = 64; input.spellcheck = false;
        input.dataset.classId = String(c.id);
        input.setAttribute('aria-label', 'name of class ' + c.id);
        input.addEventListener('keydown', function (e) {
          if (e.key === 'Enter') input.blur();
          if (e.key === 'Escape') { input.value = input.dataset.committed; input.blur(); }
        });
        input.addEventListener('blur', function () { commitRename(input); });
        li.appendChild(input);
        var share = make('span', 'share');
        share.appendChild(make('i'));
        share.appendChild(make('span', '', ''));
        li.appendChild(share);
      }
      if (ul.children[index] !== li) ul.insertBefore(li, ul.children[index] || null);
      li.querySelector('.swatch').style.background = rgb(c.color);
      li.querySelector('.share i').style.background = rgba(c.color, 0.4);
      var inp = li.querySelector('input');
      inp.dataset.committed = c.name;
      if (document.activeElement !== inp) { inp.value = c.name; inp.classList.remove('pending'); }
    });
    Object.keys(rows).forEach(function (id) { if (!seen[id]) rows[id].remove(); });
  }

  function commitRename(input) {
    var name = input.value.trim();
    var id = Number(input.dataset.classId);
    if (name === input.dataset.committed) { input.value = name; return; }
    if (!name) { input.value = input.dataset.committed; return; }
    input.classList.add('pending');
    control('rename', { classId: id, name: name }, function (r) {
      input.classList.remove('pending');
      legend = { classes: r.classes, headVersion: legend.headVersion };
      renderLegend();
    }, function (err) {
      input.classList.remove('pending');
      input.value = input.dataset.committed;
      toast('Rename refused: ' + err.message);
    });
  }

  function renderShares() {
    var sums = {}, n = 0;
    streams.forEach(function (v) {
      if (!v.stats) return;
      n++;
      v.stats.classes.forEach(function (c) { sums[c.id] = (sums[c.id] || 0) + c.fraction; });
    });
    el('legend').querySelectorAll('li').forEach(function (li) {
      var f = n ? (sums[li.dataset.classId] || 0) / n : 0;
      li.querySelector('.share i').style.width = (f * 100).toFixed(1) + '%';
      li.querySelector('.share span').textContent = n ? Math.round(f * 100) + '%' : '';
    });
  }

  // ---- header -------------------------------------------------------------------------------
  var headShown = -1;
  function setHead(version) {
    if (typeof version !== 'number' || version <= headShown) return;
    headShown = version;
    el('head').textContent = 'v' + version;
  }

  function setLearning(state) {
    learning = state;
    el('learning').textContent = state;
    var b = el('learn-toggle');
    b.textContent = state === 'paused' ? 'Resume learning' : 'Pause learning';
    b.disabled = state === 'frozen';
  }

  el('learn-toggle').addEventListener('click', function () {
    var b = el('learn-toggle');
    b.disabled = true;
    control(learning === 'paused' ? 'resume' : 'pause', {}, function () { b.disabled = false; }, function (err) {
      b.disabled = false;
      toast(err.message);
    });
  });

  // ---- render loop: metrics and charts at 4 Hz, so charts scroll even when a stream stalls ----
  setInterval(function () {
    streams.forEach(function (v) { renderMetrics(v); drawChart(v); });
    renderShares();
  }, 250);

  connect();
})();
</script>
</body>
</html>
`;
