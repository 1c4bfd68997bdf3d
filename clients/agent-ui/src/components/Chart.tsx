import { useEffect, useRef } from "preact/hooks";
import {
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  type ChartConfiguration,
  DoughnutController,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
} from "chart.js";

Chart.register(
  ArcElement,
  BarController,
  BarElement,
  CategoryScale,
  DoughnutController,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
);

/** Colours that keep 3:1 contrast against white, one per series. */
export const SERIES_COLOURS = ["#1d4ed8", "#b45309", "#15803d", "#b91c1c", "#7c3aed", "#0e7490", "#be185d"];

/**
 * A Chart.js chart on a canvas. The canvas is an image to assistive
 * technology, described by `summary` (the same figures in words); the chart
 * is rebuilt when `config` changes and destroyed with the component.
 */
export function ChartCanvas({ config, summary, name }: { config: ChartConfiguration; summary: string; name: string }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (canvas.current === null) return;
    const chart = new Chart(canvas.current, {
      ...config,
      options: { responsive: true, maintainAspectRatio: false, animation: false, ...config.options },
    });
    return () => chart.destroy();
  }, [config]);
  return (
    <div class="chart-box" data-chart={name}>
      <canvas ref={canvas} role="img" aria-label={summary} />
    </div>
  );
}
