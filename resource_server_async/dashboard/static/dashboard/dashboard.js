// The dashboard's only script (the CSP allows no other): draws each page's charts from the JSON
// the page embeds, and refreshes the clusters page in place.
"use strict";

const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"];

function drawCharts() {
  for (const canvas of document.querySelectorAll("canvas[data-chart]")) {
    const data = JSON.parse(document.getElementById("data-" + canvas.dataset.chart).textContent);
    const chart = new Chart(canvas, {
      type: data.kind,
      data: {
        labels: data.labels,
        datasets: data.series.map((s, i) => ({
          label: s.name,
          data: s.values,
          borderColor: COLOURS[i % COLOURS.length],
          backgroundColor: COLOURS[i % COLOURS.length],
          tension: 0.2,
          pointRadius: data.kind === "line" ? 2 : undefined,
        })),
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, title: { display: !!data.unit, text: data.unit } } },
      },
    });
    // What the browser tests read: the points Chart.js laid out, per dataset.
    canvas.dataset.points = chart.getDatasetMeta(0) ? chart.getDatasetMeta(0).data.length : 0;
    canvas.dataset.rendered = "1";
  }
}

function cell(row, text, tag = "td") {
  const node = document.createElement(tag);
  node.textContent = text;
  row.appendChild(node);
  return node;
}

function jobsText(jobs) {
  if (!jobs.supported) return "not reported";
  if (jobs.error) return "unavailable: " + jobs.error;
  const parts = Object.entries(jobs.counts).map(([k, n]) => `${k}: ${n}`);
  parts.push(...Object.entries(jobs.status).map(([k, v]) => `${k}: ${v}`));
  return parts.join(", ") || "no jobs";
}

function renderClusters(box, answer) {
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const name of ["cluster", "maintenance", "endpoint", "model", "framework", "state", "jobs"]) {
    cell(head, name, "th");
  }
  const body = table.createTBody();
  for (const cluster of answer.clusters) {
    const endpoints = cluster.endpoints.length ? cluster.endpoints : [null];
    endpoints.forEach((endpoint, i) => {
      const row = body.insertRow();
      row.dataset.cluster = cluster.name;
      cell(row, i === 0 ? cluster.name : "");
      const shut = cell(row, i === 0 ? cluster.maintenance || "open" : "");
      if (cluster.maintenance) shut.className = "maintenance";
      cell(row, endpoint ? endpoint.slug : "(no endpoints)");
      cell(row, endpoint ? endpoint.model : "");
      cell(row, endpoint ? endpoint.framework : "");
      const state = cell(row, endpoint ? endpoint.state : "");
      state.className = "state state-" + (endpoint ? endpoint.state : "none");
      if (endpoint) state.dataset.endpoint = endpoint.slug;
      cell(row, i === 0 ? jobsText(cluster.jobs) : "");
    });
  }
  box.replaceChildren(table);
  document.getElementById("clusters-updated").textContent = "Updated " + answer.at;
}

function watchClusters(box) {
  const refresh = Math.max(1, Number(box.dataset.refresh || 5)) * 1000;
  const load = async () => {
    try {
      const response = await fetch(box.dataset.source, { credentials: "same-origin" });
      if (!response.ok) throw new Error("HTTP " + response.status);
      renderClusters(box, await response.json());
    } catch (error) {
      document.getElementById("clusters-updated").textContent = "Update failed: " + error.message;
    } finally {
      setTimeout(load, refresh);
    }
  };
  load();
}

document.addEventListener("DOMContentLoaded", () => {
  drawCharts();
  const box = document.getElementById("clusters");
  if (box) watchClusters(box);
});
