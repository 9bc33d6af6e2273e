/**
 * Traffic over the last hour (GET /v1/traffic: 5 s samples of bytes/s in and out) drawn by uPlot,
 * refreshed every 5 s. The figures are also given as text (the last sample), for screen readers and
 * for the tests.
 */
import { useEffect, useRef, useState } from 'preact/hooks';
import uPlot from 'uplot';
import { traffic, type TrafficSeries } from './api.js';
import { errorText, rate } from './ui.js';

const REFRESH_MS = 5000;

export function TrafficChart({ kind, name, title }: { kind: string; name: string; title: string }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const [series, setSeries] = useState<TrafficSeries | null>(null);
  const [err, setErr] = useState<string | null>(null);

  useEffect(() => {
    let stop = false;
    const load = () =>
      traffic(kind, name).then(
        (s) => {
          if (!stop) {
            setSeries(s);
            setErr(null);
          }
        },
        (e: unknown) => !stop && setErr(errorText(e)),
      );
    void load();
    const t = setInterval(load, REFRESH_MS);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, [kind, name]);

  useEffect(() => {
    if (!series || !box.current) return;
    const xs = series.points.map((p) => p[0] / 1000);
    const data: uPlot.AlignedData = [xs, series.points.map((p) => p[1]), series.points.map((p) => p[2])];
    const width = Math.max(280, box.current.clientWidth || 600);
    if (!plot.current) {
      plot.current = new uPlot(
        {
          width,
          height: 200,
          scales: { x: { time: true } },
          axes: [{}, { values: (_u, vals) => vals.map((v) => rate(v)), size: 80 }],
          series: [
            {},
            { label: 'in', stroke: '#1f77b4', width: 2, value: (_u, v) => (v == null ? '-' : rate(v)) },
            { label: 'out', stroke: '#d62728', width: 2, value: (_u, v) => (v == null ? '-' : rate(v)) },
          ],
        },
        data,
        box.current,
      );
    } else plot.current.setData(data);
  }, [series]);

  useEffect(() => {
    const onResize = () => plot.current && box.current && plot.current.setSize({ width: Math.max(280, box.current.clientWidth), height: 200 });
    window.addEventListener('resize', onResize);
    return () => {
      window.removeEventListener('resize', onResize);
      plot.current?.destroy();
      plot.current = null;
    };
  }, []);

  const last = series?.points[series.points.length - 1];
  const total = series?.points.reduce((a, p) => a + p[1] + p[2], 0) ?? 0;
  return (
    <section class="chart" aria-label={title} data-kind={kind} data-name={name} data-total={total}>
      <h3>{title}</h3>
      {err && <p class="error">{err}</p>}
      <div ref={box} class="plot" role="img" aria-label={`${title}: bytes per second in and out over the last hour`} />
      <p class="figures">
        now: in <span class="rate-in">{rate(last?.[1] ?? 0)}</span>, out <span class="rate-out">{rate(last?.[2] ?? 0)}</span>
        {series ? ` (${series.points.length} samples of ${series.stepSeconds} s)` : ''}
      </p>
    </section>
  );
}
