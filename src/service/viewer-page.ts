/**
 * The live viewer served on `/`: one self-contained page (inline CSS and JS, no build step, no
 * CDN), so it works offline and ships inside `dist` with plain `tsc`.
 *
 * It opens `/ws` on its own origin (passing on `?token=` from its URL; `?streams=a,b` limits the
 * streams), subscribes to stats, frames, classes and events, and shows per stream: the overlay,
 * a source-state badge, fps, dropped and skipped frames, and a stacked chart of class shares over
 * the last minute, 10 minutes or hour (filled from the server's summaries, so a reload or a late
 * viewer sees the past); per stream: enlarge/fullscreen, overlay/picture/mask view with an opacity
 * slider (blended in the page from the `raw` and `masks` channels), a PNG snapshot and a CSV of the
 * chart. The shared legend: names can be edited (a rename goes out as a control message and every
 * open viewer updates; a name another class has is refused), hovering or clicking a class
 * highlights it in the pictures and charts, and its share column follows the selected stream.
 * While disconnected, everything stale is greyed and the controls are disabled.
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
  @media (max-width: 1100px) { main { grid-template-columns: minmax(0, 1fr) 230px; gap: 12px; padding: 12px; } }
  @media (max-width: 640px) { main { grid-template-columns: minmax(0, 1fr); } }
  #streams { display: grid; grid-template-columns: repeat(auto-fill, minmax(320px, 1fr)); gap: 18px; }
  .card.expanded { grid-column: 1 / -1; }
  .card.selected { border-color: var(--accent); }
  .card:fullscreen { overflow: auto; border-radius: 0; }
  .card-head { cursor: pointer; }
  .tools { display: flex; flex-wrap: wrap; align-items: center; gap: 6px; padding: 6px 12px; border-top: 1px solid var(--line); }
  .tools select { font: inherit; font-size: 12px; color: var(--text); background: var(--panel-2); border: 1px solid var(--line); border-radius: 6px; padding: 3px 4px; }
  .tools input[type=range] { width: 90px; accent-color: var(--accent); }
  .tools label { color: var(--muted); font-size: 11.5px; display: inline-flex; align-items: center; gap: 4px; }
  .tools button { padding: 3px 8px; }
  .frame canvas.composite { width: 100%; height: 100%; object-fit: contain; display: none; }
  .frame.custom img { visibility: hidden; position: absolute; }
  .frame.custom canvas.composite { display: block; }
  body.offline .card, body.offline aside, body.offline #head, body.offline #learning { opacity: .45; filter: grayscale(.8); }
  .legend li { cursor: pointer; border-radius: 6px; }
  .legend li.hl { background: var(--panel-2); outline: 1px solid var(--accent); }
  .chart-title select { font: inherit; font-size: 11px; color: var(--muted); background: transparent; border: 0; }
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
    <p class="hint">Click a name to rename it; every viewer sees the change. Hover or click a class to highlight it; click a stream's title to see its shares. Share in <b id="share-of">all streams</b>.</p>
    <ul class="legend" id="legend"></ul>
  </aside>
</main>
<div id="toast"></div>
<script>
(function () {
  'use strict';
  var SPANS = { '60': 60000, '600': 600000, '3600': 3600000 };
  var DEFAULT_OPACITY = 45;          // the server's overlay: class colours at 45% over the picture
  var params = new URLSearchParams(location.search);
  var token = params.get('token');
  var wanted = (params.get('streams') || '*').split(',').map(function (s) { return s.trim(); }).filter(Boolean);

  var streams = new Map();          // name -> per-stream view state
  var legend = { classes: [], headVersion: -1 };
  var ws = null, reqId = 0, retryMs = 1000, learning = null, subscribedPixels = null;
  var pending = new Map();          // control request id -> { onOk, onError }
  var decoder = new TextDecoder();
  var highlight = null, pinned = false, selected = null;

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

  function download(name, blob) {
    var a = make('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 5000);
  }

  // ---- connection ---------------------------------------------------------------------------
  function setConn(kind, text) {
    var c = el('conn');
    c.querySelector('.dot').className = 'dot ' + kind;
    c.querySelector('.txt').textContent = text;
  }

  // While disconnected nothing shown is current: grey it, and disable what would need the server.
  function setOffline(off) {
    document.body.classList.toggle('offline', off);
    document.querySelectorAll('#legend input').forEach(function (i) { i.disabled = off; });
    el('learn-toggle').disabled = off || learning === 'frozen';
    if (off) {
      headShown = -1;
      el('head').textContent = '–';
      el('learning').textContent = '–';
    }
  }

  // Pictures and masks are only asked for while a view blends them in the page.
  function needsPixels() {
    if (highlight !== null) return true;
    var any = false;
    streams.forEach(function (v) { if (v.mode !== 'overlay' || v.opacity !== DEFAULT_OPACITY) any = true; });
    return any;
  }

  function subscribe() {
    var px = needsPixels();
    subscribedPixels = px;
    var channels = ['stats', 'frames', 'classes', 'events', 'summary'];
    if (px) channels.push('raw', 'masks');
    send({ type: 'subscribe', streams: wanted, channels: channels });
  }

  function resubscribeIfNeeded() {
    if (needsPixels() !== subscribedPixels) subscribe();
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
      setOffline(false);
      subscribe();
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
      setOffline(true);
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
      case 'summary': if (m.window === '1s') addSummary(view(m.stream), m); break;
      case 'history': onHistory(m); break;
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
    while (h.length && point.t - h[0].t > 62000) h.shift();
  }

  // One-second summaries: the long chart, and the past before the page was opened.
  function addSummary(v, s) {
    var t = Date.parse(s.end);
    var long = v.long;
    if (long.length && long[long.length - 1].t >= t) return;
    var point = { t: t, f: {} };
    s.classes.forEach(function (c) { point.f[c.id] = c.mean; v.colors[c.id] = c.color; });
    long.push(point);
    while (long.length && t - long[0].t > 3600000) long.shift();
  }

  function onHistory(m) {
    var v = view(m.stream);
    var merged = m.summaries.map(function (s) {
      var p = { t: Date.parse(s.end), f: {} };
      s.classes.forEach(function (c) { p.f[c.id] = c.mean; v.colors[c.id] = c.color; });
      return p;
    });
    var newest = merged.length ? merged[merged.length - 1].t : -Infinity;
    v.long = merged.concat(v.long.filter(function (p) { return p.t > newest; }));
    if (!v.lastCaptured && merged.length) { v.lastCaptured = newest; v.lastArrival = performance.now(); }
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
    var v = view(h.stream);
    var blob = new Blob([new Uint8Array(buf, 4 + n)], { type: h.mime });
    if (h.channel === 'raw' || h.channel === 'masks') return onPixels(v, h, blob);
    if (h.channel !== 'frames') return;
    if (v.lastFrameSeq >= 0 && h.seq > v.lastFrameSeq + 1) v.skipped += h.seq - v.lastFrameSeq - 1;
    v.lastFrameSeq = h.seq;
    v.frames++;
    var url = URL.createObjectURL(blob);
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

  // ---- pictures blended in the page (view modes, opacity, highlight) -------------------------
  function onPixels(v, h, blob) {
    createImageBitmap(blob).then(function (bmp) {
      var slot = h.channel === 'raw' ? 'raw' : 'mask';
      if (v[slot] && v[slot].bmp) v[slot].bmp.close();
      v[slot] = { bmp: bmp, seq: h.seq };
      composite(v);
    }, function () { /* a frame that does not decode is skipped */ });
  }

  function composite(v) {
    if (!v.frame.classList.contains('custom')) return;
    var raw = v.raw, mask = v.mask;
    var useRaw = v.mode !== 'mask', useMask = v.mode !== 'raw';
    if ((useRaw && !raw) || (useMask && !mask)) return;
    if (useRaw && useMask && raw.seq !== mask.seq) return;
    var w = useRaw ? raw.bmp.width : mask.bmp.width, hgt = useRaw ? raw.bmp.height : mask.bmp.height;
    var c = v.canvas2;
    if (c.width !== w || c.height !== hgt) { c.width = w; c.height = hgt; }
    var g = c.getContext('2d');
    g.clearRect(0, 0, w, hgt);
    if (useRaw) g.drawImage(raw.bmp, 0, 0, w, hgt);
    if (useMask) {
      g.globalAlpha = v.mode === 'mask' ? 1 : v.opacity / 100;
      g.drawImage(highlight === null ? mask.bmp : highlighted(v, mask.bmp), 0, 0, w, hgt);
      g.globalAlpha = 1;
    }
    c.dataset.seq = String(useRaw ? raw.seq : mask.seq);
    v.frame.style.aspectRatio = w + ' / ' + hgt;
  }

  // The mask with every class but the highlighted one made transparent.
  function highlighted(v, bmp) {
    var o = v.scratch || (v.scratch = document.createElement('canvas'));
    o.width = bmp.width; o.height = bmp.height;
    var g = o.getContext('2d', { willReadFrequently: true });
    g.drawImage(bmp, 0, 0);
    var col = v.colors[highlight];
    if (!col) return o;
    var img = g.getImageData(0, 0, o.width, o.height), d = img.data;
    for (var i = 0; i < d.length; i += 4) {
      if (Math.abs(d[i] - col[0]) > 2 || Math.abs(d[i + 1] - col[1]) > 2 || Math.abs(d[i + 2] - col[2]) > 2) d[i + 3] = 0;
    }
    g.putImageData(img, 0, 0);
    return o;
  }

  function setView(v) {
    var custom = v.mode !== 'overlay' || v.opacity !== DEFAULT_OPACITY || highlight !== null;
    v.frame.classList.toggle('custom', custom);
    v.card.dataset.mode = v.mode;
    resubscribeIfNeeded();
    composite(v);
  }

  // ---- per-stream cards ---------------------------------------------------------------------
  function view(name) {
    var v = streams.get(name);
    if (v) return v;
    var card = make('article', 'card');
    card.dataset.stream = name;
    card.dataset.mode = 'overlay';
    var head = make('div', 'card-head');
    var title = make('h2', '', name); title.title = name + ' (click to see its class shares in the legend)';
    var badge = make('span', 'badge', 'waiting');
    head.appendChild(title); head.appendChild(badge);
    var frame = make('div', 'frame');
    var img = make('img'); img.alt = 'overlay of ' + name;
    var canvas2 = make('canvas', 'composite');
    frame.appendChild(img); frame.appendChild(make('div', 'placeholder', 'waiting for frames…')); frame.appendChild(canvas2);
    var tools = make('div', 'tools');
    var full = make('button', 'fullscreen', 'Enlarge'); full.type = 'button'; full.dataset.action = 'fullscreen';
    full.title = 'enlarge this stream (and go fullscreen where the browser allows)';
    var mode = make('select', 'mode');
    [['overlay', 'overlay'], ['raw', 'picture'], ['mask', 'mask']].forEach(function (o) {
      var opt = make('option', '', o[1]); opt.value = o[0]; mode.appendChild(opt);
    });
    mode.title = 'what the picture shows';
    var opLabel = make('label', '', 'opacity');
    var opacity = make('input', 'opacity'); opacity.type = 'range'; opacity.min = '0'; opacity.max = '100'; opacity.value = String(DEFAULT_OPACITY);
    opacity.title = 'opacity of the class colours';
    opLabel.appendChild(opacity);
    var snap = make('button', '', 'Snapshot'); snap.type = 'button'; snap.dataset.action = 'snapshot'; snap.title = 'save the picture shown as PNG';
    var csv = make('button', '', 'CSV'); csv.type = 'button'; csv.dataset.action = 'csv'; csv.title = 'save the chart shown as CSV';
    [full, mode, opLabel, snap, csv].forEach(function (t) { tools.appendChild(t); });
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
    var spanSel = make('select', 'span');
    [['60', 'class share · last minute'], ['600', 'class share · last 10 min'], ['3600', 'class share · last hour']].forEach(function (o) {
      var opt = make('option', '', o[1]); opt.value = o[0]; spanSel.appendChild(opt);
    });
    ct.appendChild(spanSel);
    ct.appendChild(make('span', '', 'now'));
    var canvas = make('canvas', 'chart');
    chartWrap.appendChild(ct); chartWrap.appendChild(canvas);
    card.appendChild(head); card.appendChild(frame); card.appendChild(tools); card.appendChild(metrics); card.appendChild(chartWrap);

    v = {
      name: name, card: card, badge: badge, frame: frame, img: img, canvas2: canvas2, cells: cells, canvas: canvas,
      history: [], long: [], times: [], colors: {}, stats: null, headVersion: -1, lastCaptured: 0, lastArrival: 0,
      frames: 0, lastFrameSeq: -1, skipped: 0, pipelineDropped: null,
      loading: false, next: null, shownUrl: null, mode: 'overlay', opacity: DEFAULT_OPACITY, spanMs: SPANS['60'],
      raw: null, mask: null, scratch: null, shown: []
    };
    var vv = v;
    head.addEventListener('click', function () { select(selected === name ? null : name); });
    full.addEventListener('click', function () { toggleEnlarged(vv); });
    mode.addEventListener('change', function () { vv.mode = mode.value; setView(vv); });
    opacity.addEventListener('input', function () { vv.opacity = Number(opacity.value); setView(vv); });
    snap.addEventListener('click', function () { snapshot(vv); });
    csv.addEventListener('click', function () { chartCsv(vv); });
    spanSel.addEventListener('change', function () { vv.spanMs = SPANS[spanSel.value]; drawChart(vv); });
    streams.set(name, v);
    var list = el('streams');
    el('empty').style.display = 'none';
    var after = null;
    list.querySelectorAll('.card').forEach(function (c) { if (!after && c.dataset.stream > name) after = c; });
    list.insertBefore(card, after);
    // The past this stream's chart would have shown had the page been open.
    send({ type: 'history', stream: name, window: '1s', seconds: 3600 });
    if (highlight !== null) setView(v);
    return v;
  }

  function toggleEnlarged(v) {
    var on = !v.card.classList.contains('expanded');
    v.card.classList.toggle('expanded', on);
    if (on && v.card.requestFullscreen) v.card.requestFullscreen().catch(function () { /* enlarged in the page only */ });
    else if (!on && document.fullscreenElement) document.exitFullscreen().catch(function () {});
  }
  document.addEventListener('fullscreenchange', function () {
    if (document.fullscreenElement) return;
    document.querySelectorAll('.card.expanded').forEach(function (c) { c.classList.remove('expanded'); });
  });

  function select(name) {
    selected = name;
    streams.forEach(function (v) { v.card.classList.toggle('selected', v.name === name); });
    el('share-of').textContent = name === null ? 'all streams' : name;
    renderShares();
  }

  function snapshot(v) {
    var src = v.frame.classList.contains('custom') ? v.canvas2 : v.img;
    var w = src.naturalWidth || src.width, h = src.naturalHeight || src.height;
    if (!w || !h) { toast('No picture yet', true); return; }
    var c = document.createElement('canvas');
    c.width = w; c.height = h;
    c.getContext('2d').drawImage(src, 0, 0, w, h);
    var seq = (src.dataset && src.dataset.seq) || 'now';
    c.toBlob(function (b) { if (b) download(v.name + '-' + seq + '.png', b); }, 'image/png');
  }

  function chartCsv(v) {
    var ids = legend.classes.map(function (c) { return c.id; });
    var names = legend.classes.map(function (c) { return '"' + c.name.replace(/"/g, '""') + '"'; });
    var lines = ['time,' + names.join(',')];
    v.shown.forEach(function (p) {
      lines.push(new Date(p.t).toISOString() + ',' + ids.map(function (id) { return (p.f[id] || 0).toFixed(4); }).join(','));
    });
    download(v.name + '-shares.csv', new Blob([lines.join('\n') + '\n'], { type: 'text/csv' }));
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

  // The points a chart of 'span' ms ending at 'now' shows: one-second summaries (the past, and
  // spans over a minute), then every frame of the last minute.
  function chartPoints(v, now, span) {
    var t0 = now - span;
    var live = span <= 60000 ? v.history.filter(function (p) { return p.t >= t0 - 1000; }) : [];
    var firstLive = live.length ? live[0].t : Infinity;
    var past = v.long.filter(function (p) { return p.t >= t0 - 1000 && p.t < firstLive; });
    return past.concat(live);
  }

  // Stacked area of class fractions over the chosen span; drawn by hand, no chart library.
  function drawChart(v) {
    var c = v.canvas, dpr = window.devicePixelRatio || 1;
    var w = Math.round(c.clientWidth * dpr), h = Math.round(c.clientHeight * dpr);
    if (!w || !h) return;
    if (c.width !== w || c.height !== h) { c.width = w; c.height = h; }
    var g = c.getContext('2d');
    g.clearRect(0, 0, w, h);
    if (!v.lastCaptured) return;
    var span = v.spanMs;
    // The right edge is the newest frame's capture time, moving on in real time while none comes.
    var now = v.lastCaptured + (performance.now() - v.lastArrival), t0 = now - span;
    var x = function (t) { return (t - t0) / span * w; };
    var y = function (f) { return h - f * h; };
    g.strokeStyle = 'rgba(138, 160, 176, .16)';
    g.lineWidth = 1;
    for (var q = 1; q < 4; q++) { g.beginPath(); g.moveTo(0, Math.round(y(q / 4)) + .5); g.lineTo(w, Math.round(y(q / 4)) + .5); g.stroke(); }
    for (var s = 1; s < 6; s++) { var gx = Math.round(x(now - s * span / 6)) + .5; g.beginPath(); g.moveTo(gx, 0); g.lineTo(gx, h); g.stroke(); }
    var pts = chartPoints(v, now, span);
    v.shown = pts;
    c.dataset.points = String(pts.length);
    c.dataset.oldest = pts.length ? String(pts[0].t) : '';
    if (pts.length < 2) return;
    var ids = Object.keys(v.colors).map(Number).sort(function (a, b) { return a - b; });
    var lower = pts.map(function () { return 0; });
    ids.forEach(function (id) {
      var upper = pts.map(function (p, i) { return lower[i] + (p.f[id] || 0); });
      var col = v.colors[id];
      var dim = highlight !== null && highlight !== id;
      g.beginPath();
      pts.forEach(function (p, i) { var px = x(p.t), py = y(upper[i]); if (i) g.lineTo(px, py); else g.moveTo(px, py); });
      for (var i = pts.length - 1; i >= 0; i--) g.lineTo(x(pts[i].t), y(lower[i]));
      g.closePath();
      g.fillStyle = rgba(col, dim ? 0.15 : 0.78);
      g.fill();
      g.beginPath();
      pts.forEach(function (p, i) { var px = x(p.t), py = y(upper[i]); if (i) g.lineTo(px, py); else g.moveTo(px, py); });
      g.strokeStyle = dim ? rgba(col, 0.3) : rgb(col);
      g.lineWidth = Math.max(1, dpr);
      g.stroke();
      lower = upper;
    });
  }

  // ---- legend -------------------------------------------------------------------------------
  function setHighlight(id) {
    if (highlight === id) return;
    highlight = id;
    el('legend').querySelectorAll('li').forEach(function (li) { li.classList.toggle('hl', Number(li.dataset.classId) === id); });
    streams.forEach(function (v) { setView(v); drawChart(v); });
  }

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
        input.addEventListener('click', function (e) { e.stopPropagation(); });
        li.appendChild(input);
        var share = make('span', 'share');
        share.appendChild(make('i'));
        share.appendChild(make('span', '', ''));
        li.appendChild(share);
        var cid = c.id;
        li.addEventListener('mouseenter', function () { if (!pinned) setHighlight(cid); });
        li.addEventListener('mouseleave', function () { if (!pinned) setHighlight(null); });
        li.addEventListener('click', function () {
          pinned = !(pinned && highlight === cid);
          setHighlight(pinned ? cid : null);
        });
        if (document.body.classList.contains('offline')) input.disabled = true;
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
    var taken = legend.classes.filter(function (c) { return c.id !== id && c.name.trim().toLowerCase() === name.toLowerCase(); })[0];
    if (taken) {
      input.value = input.dataset.committed;
      toast('Rename refused: class ' + taken.id + ' is already named "' + taken.name + '"');
      return;
    }
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

  // Shares of the selected stream's latest frame, or the mean over every stream's.
  function renderShares() {
    var sums = {}, n = 0;
    streams.forEach(function (v) {
      if (!v.stats || (selected !== null && v.name !== selected)) return;
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
    b.disabled = state === 'frozen' || document.body.classList.contains('offline');
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
