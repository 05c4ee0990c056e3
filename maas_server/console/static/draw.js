// Drawing on canvases: boxes and landmarks over a photo, a similarity heatmap, line charts.
// Everything is drawn from the numbers the API returned; text goes through fillText, never HTML.

import { el } from "./api.js";

/** Colours for labels and series, picked to read on photos and on white (pure hues: tests find them). */
export const PALETTE = ["#ff00ff", "#00c8ff", "#ffb000", "#00d060", "#ff3030", "#8060ff", "#00a0a0", "#c06000",
  "#0050ff", "#a0a000", "#ff80c0", "#505050"];

const colourOf = new Map();
/** The same label always gets the same colour on a page. */
export function colourFor(label) {
  if (!colourOf.has(label)) colourOf.set(label, PALETTE[colourOf.size % PALETTE.length]);
  return colourOf.get(label);
}

/** An <img> for a File or Blob, resolved once it has decoded. */
export function loadImage(file) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error(`${file.name || "the file"} is not an image this browser can show`));
    image.src = URL.createObjectURL(file);
  });
}

/** Draw the photo at its own size, then each item's box (and landmarks) with a readable label.
 * The canvas must be in the page already, so that the size it is shown at is known. */
export function drawDetections(canvas, image, items) {
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(image, 0, 0);
  // Sized for the picture as shown (CSS may shrink it to the window): labels read at 14 px, lines at 2.
  const scale = canvas.width / (canvas.getBoundingClientRect().width || canvas.width);
  const line = Math.max(2, Math.round(2 * scale));
  const font = Math.max(12, Math.round(14 * scale));
  for (const item of items) drawBox(ctx, item, line, font);
}

function drawBox(ctx, { box, label, score, landmarks }, line, font) {
  const colour = colourFor(label);
  ctx.strokeStyle = colour;
  ctx.lineWidth = line;
  ctx.strokeRect(box.x1, box.y1, box.x2 - box.x1, box.y2 - box.y1);
  for (const point of Object.values(landmarks || {})) {
    ctx.fillStyle = colour;
    ctx.beginPath();
    ctx.arc(point.x, point.y, line * 1.5, 0, 2 * Math.PI);
    ctx.fill();
  }
  const text = `${label} ${(score * 100).toFixed(0)}%`;
  ctx.font = `${font}px system-ui, sans-serif`;
  const width = ctx.measureText(text).width + 8, height = font + 6;
  // Above the box when there is room, else inside its top edge: a label never leaves the picture.
  const y = box.y1 - height >= 0 ? box.y1 - height : box.y1 + line;
  const x = Math.min(Math.max(0, box.x1), ctx.canvas.width - width);
  ctx.fillStyle = colour;
  ctx.fillRect(x, y, width, height);
  ctx.fillStyle = "#000";
  ctx.textBaseline = "top";
  ctx.fillText(text, x + 4, y + 3);
}

/** A square heatmap of similarities in [-1, 1] (blue low, red high), with the value in each cell. */
export function drawHeatmap(canvas, matrix) {
  const n = matrix.length, cell = Math.max(40, Math.min(90, Math.floor(480 / Math.max(1, n))));
  canvas.width = canvas.height = n * cell;
  const ctx = canvas.getContext("2d");
  ctx.font = `${Math.round(cell / 4)}px system-ui, sans-serif`;
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  matrix.forEach((row, i) => row.forEach((value, j) => {
    ctx.fillStyle = heat(value);
    ctx.fillRect(j * cell, i * cell, cell, cell);
    ctx.fillStyle = Math.abs(value) > 0.6 ? "#fff" : "#000";
    ctx.fillText(value.toFixed(2), j * cell + cell / 2, i * cell + cell / 2);
  }));
}

function heat(value) {
  const v = Math.max(-1, Math.min(1, value));
  const r = v > 0 ? 255 : Math.round(255 * (1 + v)), b = v < 0 ? 255 : Math.round(255 * (1 - v));
  const g = Math.round(255 * (1 - Math.abs(v)));
  return `rgb(${r},${g},${b})`;
}

/** A CSS colour for a token weight in [-1, 1]: green for the label, red against, clear near 0. */
export function weightColour(weight) {
  const alpha = Math.min(1, Math.abs(weight)) * 0.8;
  return weight >= 0 ? `rgba(0,170,80,${alpha})` : `rgba(220,40,40,${alpha})`;
}

/**
 * A line chart of several series over time: series = [{name, points: [[unixSeconds, value], ...]}].
 * Sets data-points on the canvas to the number of points drawn.
 */
export function drawLineChart(canvas, title, series) {
  const width = canvas.width = Math.max(320, Math.min(900, canvas.parentElement?.clientWidth || 600));
  const height = canvas.height = 260;
  const ctx = canvas.getContext("2d");
  const pad = { left: 56, right: 16, top: 28, bottom: 26 };
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  const all = series.flatMap((s) => s.points);
  canvas.dataset.points = String(all.length);
  ctx.fillStyle = "#111";
  ctx.font = "14px system-ui, sans-serif";
  ctx.textBaseline = "top";
  ctx.fillText(title, pad.left, 6);
  if (!all.length) { ctx.fillText("no data in this range", pad.left, height / 2); return; }
  const [t0, t1] = extent(all.map((p) => p[0])), [, vMax] = extent([0, ...all.map((p) => p[1])]);
  const x = (t) => pad.left + (t1 === t0 ? 0.5 : (t - t0) / (t1 - t0)) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - (vMax === 0 ? 0 : v / vMax) * (height - pad.top - pad.bottom);
  axes(ctx, { width, height, pad, t0, t1, vMax, x, y });
  series.forEach((s) => plotSeries(ctx, s, x, y));
}

/** The series' names with their colours, as a list that wraps (the chart itself has no legend). */
export function chartLegend(series) {
  return el("ul", { class: "legend" }, ...series.map(({ name }) => {
    const swatch = el("span", { class: "swatch" });
    swatch.style.backgroundColor = colourFor(name);
    return el("li", {}, swatch, name);
  }));
}

function extent(values) { return [Math.min(...values), Math.max(...values)]; }

function axes(ctx, { width, height, pad, t0, t1, vMax, x, y }) {
  ctx.strokeStyle = "#888";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(pad.left, pad.top);
  ctx.lineTo(pad.left, height - pad.bottom);
  ctx.lineTo(width - pad.right, height - pad.bottom);
  ctx.stroke();
  ctx.fillStyle = "#333";
  ctx.font = "12px system-ui, sans-serif";
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of [0, vMax / 2, vMax]) ctx.fillText(formatNumber(v), pad.left - 6, y(v));
  ctx.textBaseline = "top";
  // The first time at the left end, the last at the right end, each kept inside the canvas.
  ctx.textAlign = "left";
  ctx.fillText(timeLabel(t0), pad.left, height - pad.bottom + 6);
  if (t1 !== t0) {
    ctx.textAlign = "right";
    ctx.fillText(timeLabel(t1), width - pad.right, height - pad.bottom + 6);
  }
  ctx.textAlign = "left";
}

function plotSeries(ctx, { name, points }, x, y) {
  const colour = colourFor(name);
  const sorted = [...points].sort((a, b) => a[0] - b[0]);
  ctx.strokeStyle = ctx.fillStyle = colour;
  ctx.lineWidth = 2;
  ctx.beginPath();
  sorted.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
  ctx.stroke();
  for (const [t, v] of sorted) { ctx.beginPath(); ctx.arc(x(t), y(v), 4, 0, 2 * Math.PI); ctx.fill(); }
}

function timeLabel(seconds) {
  return new Date(seconds * 1000).toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit",
    minute: "2-digit" });
}

function formatNumber(value) {
  return Math.abs(value) >= 1000 ? value.toFixed(0) : Number(value.toPrecision(3)).toString();
}
