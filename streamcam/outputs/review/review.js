// streamcam review viewer: frames and CAM grids from the inline JSON; heatmaps coloured here.
(function () {
  "use strict";
  const D = JSON.parse(document.getElementById("review-data").textContent);
  const frames = D.frames;
  const $ = (id) => document.getElementById(id);
  const canvas = $("frame"), ctx = canvas.getContext("2d", { willReadFrequently: true });
  const state = { pos: 0, cls: "top1", alpha: 0.5, cmap: "jet", original: false, playing: false, evidence: true };
  const classById = new Map(D.classes.map((c) => [String(c.id), c]));

  function bytes(b64) {
    const s = atob(b64), out = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
    return out;
  }
  const luts = {};
  for (const name of Object.keys(D.colormaps)) luts[name] = bytes(D.colormaps[name]);

  // Images decode once and stay cached; a few thousand small JPEGs are what the page holds anyway.
  const images = new Array(frames.length);
  function image(n) {
    if (!images[n]) {
      const img = new Image();
      img.ready = new Promise((ok) => { img.onload = ok; img.onerror = ok; });
      img.src = "data:image/jpeg;base64," + frames[n].img;
      images[n] = img;
    }
    return images[n];
  }

  function className(id) {
    const c = classById.get(String(id));
    return c ? c.name : (D.names[String(id)] || String(id));
  }

  // Which explained class the heatmap shows: the selected one, or each frame's top-1.
  function camClass(f) { return state.cls === "top1" ? String(f.top[0][0]) : state.cls; }

  // Bilinear upsampling with pixel centres aligned as cv2.resize does (the overlay video's look).
  function heat(grid, W, H) {
    const [h, w, b64] = grid, g = bytes(b64), out = new Uint8Array(W * H);
    const sx = w / W, sy = h / H;
    const x0 = new Int32Array(W), x1 = new Int32Array(W), fx = new Float32Array(W);
    for (let x = 0; x < W; x++) {
      let gx = (x + 0.5) * sx - 0.5; if (gx < 0) gx = 0;
      const i = Math.min(Math.floor(gx), w - 1);
      x0[x] = i; x1[x] = Math.min(i + 1, w - 1); fx[x] = Math.min(gx - i, 1);
    }
    for (let y = 0; y < H; y++) {
      let gy = (y + 0.5) * sy - 0.5; if (gy < 0) gy = 0;
      const j = Math.min(Math.floor(gy), h - 1), j1 = Math.min(j + 1, h - 1), fy = Math.min(gy - j, 1);
      const r0 = j * w, r1 = j1 * w;
      for (let x = 0; x < W; x++) {
        const a = g[r0 + x0[x]] + (g[r0 + x1[x]] - g[r0 + x0[x]]) * fx[x];
        const b = g[r1 + x0[x]] + (g[r1 + x1[x]] - g[r1 + x0[x]]) * fx[x];
        out[y * W + x] = Math.round(a + (b - a) * fy);
      }
    }
    return out;
  }

  // Heat that means something (as the overlay video draws it): the map scaled by its class's
  // evidence, plocal where known, else its probability; faded out below D.evidence.fade.
  function evidenceAt(n, cid) {
    const f = frames[n], cls = classById.get(cid);
    if (D.evidence.local && f.pl[cid] !== undefined) return f.pl[cid];
    if (cls) return cls.p[n];
    const top = f.top.find(([c]) => String(c) === cid);
    return top ? top[1] : 0;
  }
  function strengthOf(e) {
    const { fade, full } = D.evidence;
    return Math.min(1, Math.max(0, (e - fade) / (full - fade)));
  }

  let drawToken = 0;
  async function draw() {
    const token = ++drawToken, n = state.pos, f = frames[n], img = image(n);
    await img.ready;
    if (token !== drawToken) return;  // a newer frame was asked for meanwhile
    const W = img.naturalWidth || D.size[0], H = img.naturalHeight || D.size[1];
    if (canvas.width !== W || canvas.height !== H) {
      canvas.width = W; canvas.height = H;
      canvas.style.setProperty("--aspect", String(W / H));  // the CSS keeps the chart's legend on screen
    }
    ctx.drawImage(img, 0, 0, W, H);
    const cid = camClass(f), grid = f.cams[cid];
    const evidence = evidenceAt(n, cid), strength = state.evidence ? strengthOf(evidence) : 1;
    canvas.dataset.strength = String(strength);
    let info = "";
    if (!state.original && grid && state.alpha * strength > 0) {
      const px = ctx.getImageData(0, 0, W, H), d = px.data, lv = heat(grid, W, H), lut = luts[state.cmap];
      const a = state.alpha * strength, b = 1 - a;
      for (let p = 0, q = 0; p < lv.length; p++, q += 4) {
        const l = Math.round(lv[p] * strength) * 3;
        d[q] = lut[l] * a + d[q] * b; d[q + 1] = lut[l + 1] * a + d[q + 1] * b; d[q + 2] = lut[l + 2] * a + d[q + 2] * b;
      }
      ctx.putImageData(px, 0, 0);
    } else if (!grid) {
      info = "no heatmap of this class at this frame (not explained there)";
    } else if (strength === 0 && !state.original) {
      info = `no heatmap drawn: its evidence ${evidence.toFixed(3)} is below ${D.evidence.fade}`;
    }
    canvas.dataset.camClass = grid ? cid : "";
    $("frame-index").textContent = String(f.i);
    $("time-code").textContent = f.tc;
    $("time-code").dataset.seconds = String(f.t);
    $("position").textContent = `(${n + 1} of ${frames.length})`;
    const rows = f.top.map(([c, p], r) =>
      `<tr class="${String(c) === cid ? "selected" : ""}"><td>${r + 1}</td><td>${esc(className(c))}</td><td>${p.toFixed(3)}</td></tr>`);
    document.querySelector("#top-table tbody").innerHTML = rows.join("");
    const pl = f.pl[cid], cls = classById.get(cid);
    let text = cls ? `${esc(cls.name)}: p ${cls.p[n].toFixed(4)}` : `${esc(className(cid))}`;
    if (pl !== undefined) text += `, plocal ${pl.toFixed(4)}`;
    const fa = f.fa[cid];
    if (fa !== undefined) text += `, <span data-testid="faith" class="${fa < D.faith_low ? "low" : "good"}">faith ${fa.toFixed(3)}</span>`;
    $("class-info").innerHTML = text + (info ? `<br><em>${info}</em>` : "");
    if (plot) plot.redraw(false, false);
    drawTrust();
  }

  // Trust strip: one cell per frame, coloured by the faithfulness of the map shown for the selected
  // class (green: the map's top pixels carry the class; red: below the low-trust threshold).
  const strip = $("trust-strip");
  function faithAt(n) {
    const f = frames[n], v = f.fa[camClass(f)];
    return v === undefined ? null : v;
  }
  function drawTrust() {
    if (!D.faith_scored) return;
    const w = strip.clientWidth || 800, h = strip.height;
    if (strip.width !== w) strip.width = w;
    const c = strip.getContext("2d"), cell = w / frames.length;
    c.clearRect(0, 0, w, h);
    for (let n = 0; n < frames.length; n++) {
      const v = faithAt(n);
      c.fillStyle = v === null ? "#444" : v < D.faith_low ? "#ff5a4a" : `rgb(40, ${Math.round(120 + 135 * Math.min(1, v / 0.3))}, 80)`;
      c.fillRect(Math.floor(n * cell), v === null ? h / 3 : 0, Math.max(1, Math.ceil(cell)), v === null ? h / 3 : h);
    }
    c.fillStyle = "#fff";
    c.fillRect(Math.floor((state.pos + 0.5) * cell) - 1, 0, 2, h);
  }
  strip.addEventListener("click", (e) => seek(Math.min(frames.length - 1, Math.floor(e.offsetX / (strip.clientWidth / frames.length)))));
  if (D.faith_scored) { $("trust").hidden = false; $("faith-low").textContent = String(D.faith_low); }

  function esc(s) { return String(s).replace(/[&<>"]/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[ch]); }

  function seek(n) {
    state.pos = Math.max(0, Math.min(frames.length - 1, n));
    return draw();
  }

  // Peaks (frame indices in the video, found in Python on each curve the timeline draws) ->
  // positions in this page's frames. The default view's curve is each frame's top-1 p.
  const posOfIndex = new Map(frames.map((f, n) => [f.i, n]));
  const positions = (indices) => indices.map((i) => posOfIndex.get(i)).filter((p) => p !== undefined);
  function curvePeaks() {  // [[curve values, positions], ...] for the view
    const c = classById.get(state.cls);
    if (!c) return [[frames.map((f) => f.top[0][1]), positions(D.top1_peaks)]];
    const out = [[c.p, positions(c.curve_peaks.p)]];
    if (c.plocal && c.curve_peaks.plocal) out.push([c.plocal, positions(c.curve_peaks.plocal)]);
    return out;
  }
  function peakPositions() {
    return [...new Set(curvePeaks().flatMap(([, ps]) => ps))].sort((a, b) => a - b);
  }
  const peakNote = $("peak-note");
  function showPeakNote(text) { peakNote.textContent = text; peakNote.hidden = !text; }
  function notePeaks() { showPeakNote(peakPositions().length ? "" : "no peaks in this window for this view"); }
  function jumpPeak(dir) {
    const ps = peakPositions();
    const target = dir > 0 ? ps.find((p) => p > state.pos) : ps.filter((p) => p < state.pos).pop();
    if (target !== undefined) { notePeaks(); seek(target); }
    else showPeakNote(ps.length ? `no ${dir > 0 ? "later" : "earlier"} peak in this window` : "no peaks in this window for this view");
  }

  // Playback at the frames' own timestamps, so variable-rate clips play at their real pace.
  let timer = null;
  function play(on) {
    state.playing = on;
    $("play").innerHTML = on ? "&#10074;&#10074;" : "&#9654;";
    clearTimeout(timer);
    if (!on) return;
    if (state.pos >= frames.length - 1) seek(0);
    const t0 = performance.now(), start = state.pos, base = frames[start].t;
    const step = () => {
      if (!state.playing) return;
      if (state.pos >= frames.length - 1) { play(false); return; }
      const next = state.pos + 1;
      seek(next);
      if (next >= frames.length - 1) { play(false); return; }
      timer = setTimeout(step, Math.max(0, (frames[next + 1].t - base) * 1000 - (performance.now() - t0)));
    };
    timer = setTimeout(step, Math.max(0, (frames[Math.min(start + 1, frames.length - 1)].t - base) * 1000));
  }

  // Timeline: the selected class's probability (and plocal) over time, uPlot from the page itself.
  let plot = null;
  const times = frames.map((f) => f.t);
  function seriesFor() {
    const c = classById.get(state.cls);
    if (!c) return { label: "top-1 p", ys: [frames.map((f) => f.top[0][1])], names: ["top-1 p"] };
    const ys = [c.p], names = [`p ${c.name}`];
    if (c.plocal) { ys.push(c.plocal.map((v) => (v === null ? null : v))); names.push(`plocal ${c.name}`); }
    return { ys, names };
  }
  function buildPlot() {
    const el = $("timeline");
    if (plot) { plot.destroy(); plot = null; }
    const s = seriesFor(), colours = ["#d62728", "#1f77b4"];
    const opts = {
      width: Math.max(300, el.clientWidth || 800), height: 180,
      scales: { x: { time: false }, y: { range: (u, lo, hi) => [0, Math.min(1, Math.max(0.05, (hi || 0) * 1.1))] } },  // small probabilities stay visible
      axes: [{ label: "time (s)" }, { label: "probability" }],
      series: [{ label: "t (s)" }, ...s.names.map((name, k) => ({ label: name, stroke: colours[k], width: 1.5, spanGaps: true }))],
      cursor: { drag: { x: false, y: false } },
      legend: { show: true },
      hooks: { draw: [drawMarks] },
    };
    plot = new uPlot(opts, [times, ...s.ys], el);
    plot.over.addEventListener("click", (e) => {
      const t = plot.posToVal(e.offsetX, "x");
      let best = 0;
      for (let n = 1; n < times.length; n++) if (Math.abs(times[n] - t) < Math.abs(times[best] - t)) best = n;
      seek(best);
    });
  }
  function drawMarks(u) {
    const c = u.ctx, dpr = window.devicePixelRatio || 1, top = u.bbox.top, h = u.bbox.height;
    c.save();
    c.fillStyle = "#000";
    for (const [values, ps] of curvePeaks()) {  // a triangle over each peak, on its own curve
      for (const p of ps) {
        const x = u.valToPos(times[p], "x", true), y = u.valToPos(values[p], "y", true);
        c.beginPath(); c.moveTo(x, y - 10 * dpr); c.lineTo(x - 5 * dpr, y - 18 * dpr); c.lineTo(x + 5 * dpr, y - 18 * dpr); c.fill();
      }
    }
    if (D.around !== null && D.around !== undefined) {  // review --around: the moment asked about
      const xa = u.valToPos(D.around, "x", true);
      c.strokeStyle = "#ff7f0e"; c.lineWidth = 2 * dpr; c.setLineDash([6 * dpr, 4 * dpr]);
      c.beginPath(); c.moveTo(xa, top); c.lineTo(xa, top + h); c.stroke();
      c.setLineDash([]); c.fillStyle = "#ff7f0e"; c.font = `${11 * dpr}px system-ui, sans-serif`;
      c.fillText("--around", xa + 4 * dpr, top + 12 * dpr);
    }
    const x = u.valToPos(times[state.pos], "x", true);
    c.strokeStyle = "#2ca02c"; c.lineWidth = 2 * dpr;
    c.beginPath(); c.moveTo(x, top); c.lineTo(x, top + h); c.stroke();
    c.restore();
  }

  // Controls
  const select = $("class-select");
  // Short entries (class, then the highest p and plocal in the window), grouped, so none is cut off.
  select.add(new Option("top-1 of each frame", "top1"));
  for (const [label, named] of [["named classes", true], ["top classes in this window", false]]) {
    const group = document.createElement("optgroup");
    group.label = label;
    for (const c of D.classes.filter((k) => k.tracked === named)) {
      const maxLocal = c.plocal ? Math.max(...c.plocal.filter((v) => v !== null), 0) : null;
      let text = `${c.name}: p ${Math.max(...c.p).toFixed(3)}`;
      if (maxLocal !== null) text += `, plocal ${maxLocal.toFixed(3)}`;
      group.appendChild(new Option(text, String(c.id)));
    }
    if (group.children.length) select.appendChild(group);
  }
  select.addEventListener("change", () => { state.cls = select.value; buildPlot(); notePeaks(); draw(); });
  const cm = $("colormap");
  for (const name of Object.keys(D.colormaps)) cm.add(new Option(name, name));
  cm.addEventListener("change", () => { state.cmap = cm.value; draw(); });
  $("alpha").addEventListener("input", (e) => { state.alpha = parseFloat(e.target.value); draw(); });
  $("original").addEventListener("change", (e) => { state.original = e.target.checked; draw(); });
  $("evidence").addEventListener("change", (e) => { state.evidence = e.target.checked; draw(); });
  $("prev").onclick = () => seek(state.pos - 1);
  $("next").onclick = () => seek(state.pos + 1);
  $("prev-peak").onclick = () => jumpPeak(-1);
  $("next-peak").onclick = () => jumpPeak(1);
  $("play").onclick = () => play(!state.playing);
  // A control keeps the keyboard focus after use, and a focused select or button takes the arrow
  // keys and Space for itself: give the focus back to the page, so the shortcuts work at once.
  for (const el of document.querySelectorAll("#controls select, #controls input, #controls button")) {
    el.addEventListener(el.tagName === "BUTTON" ? "click" : "change", () => el.blur());
  }
  document.addEventListener("keydown", (e) => {
    if (e.target.tagName === "SELECT" || e.target.tagName === "INPUT" && e.target.type !== "checkbox" && e.target.type !== "range") return;
    const k = e.key, step = e.shiftKey ? 10 : 1;
    if (k === "ArrowRight") seek(state.pos + step);
    else if (k === "ArrowLeft") seek(state.pos - step);
    else if (k === "Home") seek(0);
    else if (k === "End") seek(frames.length - 1);
    else if (k === "j" || k === "J") jumpPeak(-1);
    else if (k === "k" || k === "K") jumpPeak(1);
    else if (k === " ") play(!state.playing);
    else if (k === "o" || k === "O") { $("original").checked = !state.original; state.original = !state.original; draw(); }
    else return;
    e.preventDefault();
  });

  $("title").textContent = `${D.source}: ${frames.length} frames, ${frames[0].tc} - ${frames[frames.length - 1].tc}`;
  if (D.notice) { $("notice").hidden = false; $("notice").textContent = "Reduced to fit the size limit: " + D.notice; }
  const peaks = {};
  for (const c of D.classes) peaks[String(c.id)] = c.peaks.slice();
  // Test and scripting hook: the data, the peaks Python found, and the viewer's state.
  window.streamcamReview = {
    data: D, peaks, state, seek, draw, markedPeaks: () => peakPositions().map((p) => frames[p].i),
    lowTrustFrames: () => frames.map((f, n) => [f.i, faithAt(n)]).filter(([, v]) => v !== null && v < D.faith_low).map(([i]) => i),
    scoredFrames: () => frames.map((f, n) => [f.i, faithAt(n)]).filter(([, v]) => v !== null).map(([i]) => i),
  };
  // Open on the --around moment (the frame nearest to it), else at the window's start.
  if (D.around !== null && D.around !== undefined) {
    let best = 0;
    for (let n = 1; n < frames.length; n++) if (Math.abs(frames[n].t - D.around) < Math.abs(frames[best].t - D.around)) best = n;
    state.pos = best;
  }
  window.streamcamReview.aroundPos = state.pos;
  buildPlot();
  notePeaks();
  draw();
  window.addEventListener("resize", () => { buildPlot(); drawTrust(); });
})();
