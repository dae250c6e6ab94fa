import { MultiBar, type SingleBar } from "cli-progress";

/** How progress is shown: a redrawn bar (a terminal), a plain line now and then (CI, a log file), or nothing. */
export type ProgressStyle = "bar" | "lines" | "none";

/** What a command reports as it goes. `done` counts the units of `total` (lines, sessions, keys). */
export interface Progress {
  /** `total`: how many units there are (or at most), when known; `unit`: what is counted. */
  start(total: number | undefined, done: number, unit: string): void;
  update(done: number, detail: string): void;
  /** A line of its own (a skipped input), shown above the bar. */
  log(line: string): void;
  stop(): void;
}

export interface ProgressOptions {
  readonly style: ProgressStyle;
  readonly stream: NodeJS.WriteStream;
  /** Command name at the start of each line. */
  readonly label: string;
  /** Plain lines: at most one per this many ms. Default 5000. */
  readonly intervalMs?: number;
}

/** `auto`: a bar on a terminal, plain lines otherwise. */
export function progressStyle(choice: "auto" | ProgressStyle, stream: NodeJS.WriteStream): ProgressStyle {
  if (choice !== "auto") return choice;
  return stream.isTTY ? "bar" : "lines";
}

/**
 * Progress on stderr (stdout may be the export itself). Counts, rate and ETA: the rate over the whole run so far
 * (steady for a batch tool), the ETA from it and what is left of the total.
 */
export function createProgress(options: ProgressOptions): Progress {
  const { stream, label } = options;
  let started = Date.now();
  let first = 0;
  let total: number | undefined;
  let unit = "";
  const rate = (done: number) => {
    const seconds = (Date.now() - started) / 1000;
    return seconds > 0 ? (done - first) / seconds : 0;
  };
  const eta = (done: number) => {
    const perSecond = rate(done);
    if (total === undefined || perSecond <= 0) return "?";
    return formatDuration(Math.max(0, total - done) / perSecond);
  };

  if (options.style === "bar") {
    const bars = new MultiBar({
      stream,
      format: `${label} [{bar}] {value}/{total} {unit} | {rate}/s | ETA {etaText} | {detail}`,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      fps: 5,
    });
    let bar: SingleBar | undefined;
    return {
      start(knownTotal, done, what) {
        started = Date.now();
        first = done;
        total = knownTotal;
        unit = what;
        bar = bars.create(knownTotal ?? 0, done, { unit, rate: "0", etaText: "?", detail: "" });
      },
      update(done, detail) {
        if (total !== undefined && done > total) {
          total = done;
          bar?.setTotal(done);
        }
        bar?.update(done, { rate: Math.round(rate(done)).toLocaleString("en"), etaText: eta(done), detail });
      },
      log(line) {
        bars.log(`${line}\n`);
      },
      stop() {
        bars.stop();
      },
    };
  }

  let last = 0;
  const interval = options.intervalMs ?? 5000;
  const write = (line: string) => options.style !== "none" && stream.write(`${line}\n`);
  return {
    start(knownTotal, done, what) {
      started = Date.now();
      first = done;
      total = knownTotal;
      unit = what;
      write(`${label}: ${total === undefined ? "" : `${total.toLocaleString("en")} ${unit} to go through`}`.trim());
    },
    update(done, detail) {
      const now = Date.now();
      if (now - last < interval) return;
      last = now;
      const of = total === undefined ? "" : `/${total.toLocaleString("en")} (${percent(done, total)})`;
      write(
        `${label}: ${done.toLocaleString("en")}${of} ${unit}, ${Math.round(rate(done)).toLocaleString("en")}/s, ETA ${eta(done)}${detail ? `, ${detail}` : ""}`,
      );
    },
    log: (line) => void stream.write(`${line}\n`), // problems are shown whatever the style
    stop() {},
  };
}

function percent(done: number, total: number): string {
  return total === 0 ? "100%" : `${Math.min(100, Math.floor((done / total) * 100))}%`;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}
