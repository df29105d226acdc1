// batchrun dashboard: keeps the overview's figures and a job's state fresh from the JSON API, and draws
// the throughput chart. Every value goes in through textContent, never as markup.
"use strict";

const SVG = "http://www.w3.org/2000/svg";

async function getJSON(url) {
  const reply = await fetch(url, { headers: { Accept: "application/json" } });
  if (!reply.ok) throw new Error(url + ": " + reply.status);
  return reply.json();
}

function svgElement(name, attributes) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

function drawThroughput(svg, data) {
  const width = 600, height = 180, left = 32, bottom = 20, top = 8;
  const minutes = data.minutes;
  const most = Math.max(1, ...minutes.map((m) => m.succeeded + m.failed));
  const step = (width - left) / minutes.length;
  const scale = (height - bottom - top) / most;
  svg.replaceChildren();
  svg.appendChild(svgElement("line", { x1: left, y1: height - bottom, x2: width, y2: height - bottom, class: "axis" }));
  for (const value of [0, most]) {
    const label = svgElement("text", { x: left - 4, y: height - bottom - value * scale + 3, "text-anchor": "end" });
    label.textContent = String(value);
    svg.appendChild(label);
  }
  minutes.forEach((minute, index) => {
    const x = left + index * step + 1, w = Math.max(1, step - 2);
    const ok = minute.succeeded * scale, bad = minute.failed * scale;
    svg.appendChild(svgElement("rect", { x, width: w, y: height - bottom - ok, height: ok, class: "ok" }));
    svg.appendChild(svgElement("rect", { x, width: w, y: height - bottom - ok - bad, height: bad, class: "bad" }));
    if (index % 15 === 0) {
      const label = svgElement("text", { x, y: height - 6 });
      label.textContent = new Date(minute.t * 1000).toTimeString().slice(0, 5);
      svg.appendChild(label);
    }
  });
  const total = minutes.reduce((sum, m) => sum + m.succeeded + m.failed, 0);
  const note = document.getElementById("chart-note");
  if (note) note.textContent = "· " + total + " in the last hour";
}

async function refreshOverview() {
  const data = await getJSON("/api/overview");
  for (const [key, value] of Object.entries(data.counts)) {
    const cell = document.querySelector('[data-count="' + CSS.escape(key) + '"]');
    if (cell) cell.textContent = String(value);
  }
  for (const queue of data.queues) {
    const row = document.querySelector('tr[data-queue="' + CSS.escape(queue.name) + '"] .depth');
    if (row) row.textContent = String(queue.depth);
  }
}

function utc(seconds) {
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

async function refreshJob(panel) {
  const job = await getJSON("/api/jobs/" + encodeURIComponent(panel.dataset.jobId));
  const badge = document.getElementById("job-state");
  if (badge.textContent !== job.state) {
    badge.textContent = job.state;
    badge.className = "state state-" + job.state;
    document.querySelectorAll(".actions").forEach((node) => node.remove());
  }
  panel.querySelectorAll("[data-field]").forEach((cell) => {
    const value = job[cell.dataset.field];
    if (value === undefined) return;
    cell.textContent = cell.dataset.field.endsWith("_at") && typeof value === "number" ? utc(value) : String(value);
  });
  const result = document.getElementById("result");
  if (result && "result" in job) {
    result.textContent = typeof job.result === "string" ? job.result : JSON.stringify(job.result, null, 2);
  }
}

function every(ms, task) {
  const run = () => task().catch(() => {}).finally(() => setTimeout(run, ms));
  setTimeout(run, ms);
}

document.addEventListener("DOMContentLoaded", () => {
  const chart = document.getElementById("throughput");
  if (chart) {
    const draw = () => getJSON("/api/throughput").then((data) => drawThroughput(chart, data));
    draw().catch(() => {});
    every(15000, draw);
    every(2000, refreshOverview);
  }
  const job = document.getElementById("job");
  if (job) every(1000, () => refreshJob(job));
});
