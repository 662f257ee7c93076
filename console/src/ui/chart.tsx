/** A small SVG line chart of the tenant's load and waiting conversations over the last
 * snapshots (no chart library: two polylines and their axes). */

import type { Point } from "../supervisor.js";
import { clock, t } from "../i18n.js";

const W = 480;
const H = 140;
const PAD = 24;

function path(points: Point[], value: (p: Point) => number, top: number): string {
  if (points.length === 0) return "";
  const first = points[0]!.time;
  const span = Math.max(1, points.at(-1)!.time - first);
  return points
    .map((p, i) => {
      const x = PAD + ((points.length === 1 ? 0 : p.time - first) / span) * (W - 2 * PAD);
      const y = H - PAD - (value(p) / top) * (H - 2 * PAD);
      return `${i === 0 ? "M" : "L"}${x.toFixed(1)},${y.toFixed(1)}`;
    })
    .join(" ");
}

export function LoadChart({ points }: { points: Point[] }) {
  const top = Math.max(1, ...points.map((p) => Math.max(p.capacity, p.waiting + p.offered)));
  const last = points.at(-1);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={t("chart.title")}>
        <line x1={PAD} y1={H - PAD} x2={W - PAD} y2={H - PAD} class="axis" />
        <line x1={PAD} y1={PAD} x2={PAD} y2={H - PAD} class="axis" />
        <text x={PAD - 4} y={PAD + 4} class="tick" text-anchor="end">
          {top}
        </text>
        <text x={PAD - 4} y={H - PAD} class="tick" text-anchor="end">
          0
        </text>
        <path d={path(points, (p) => p.capacity, top)} class="line capacity" />
        <path d={path(points, (p) => p.load, top)} class="line load" />
        <path d={path(points, (p) => p.waiting + p.offered, top)} class="line waiting" />
        {points.length > 0 && (
          <text x={W - PAD} y={H - 6} class="tick" text-anchor="end">
            {clock(new Date(points.at(-1)!.time))}
          </text>
        )}
      </svg>
      <figcaption>
        <span class="key load">{t("chart.load")}</span>
        <span class="key capacity">{t("chart.capacity")}</span>
        <span class="key waiting">{t("chart.waiting")}</span>
        {last && (
          <span class="chart-now">
            {t("chart.now", { load: last.load, capacity: last.capacity, waiting: last.waiting + last.offered })}
          </span>
        )}
      </figcaption>
    </figure>
  );
}
