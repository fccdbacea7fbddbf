import { type Server, createServer } from 'node:http';

type Labels = Record<string, string>;

interface Family {
  readonly help: string;
  readonly type: 'counter' | 'gauge';
  readonly values: Map<string, { labels: Labels; value: number }>;
  /** Gauges read when scraped. */
  collect?: () => { labels: Labels; value: number }[];
}

const labelKey = (l: Labels) => JSON.stringify(Object.entries(l).sort(([a], [b]) => (a < b ? -1 : 1)));
const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');

/** Counters and gauges in the Prometheus text format. */
export class Metrics {
  private readonly families = new Map<string, Family>();

  counter(name: string, help: string): (labels?: Labels, by?: number) => void {
    const f = this.family(name, help, 'counter');
    return (labels = {}, by = 1) => {
      const k = labelKey(labels);
      const cur = f.values.get(k);
      if (cur) cur.value += by;
      else f.values.set(k, { labels, value: by });
    };
  }

  /** A gauge whose values are read at scrape time. */
  gauge(name: string, help: string, collect: () => { labels: Labels; value: number }[]): void {
    this.collected(name, help, 'gauge', collect);
  }

  /** A family whose values are read at scrape time: a gauge, or a counter kept elsewhere (the kernel's). */
  collected(name: string, help: string, type: Family['type'], collect: () => { labels: Labels; value: number }[]): void {
    this.family(name, help, type).collect = collect;
  }

  /** The value of one series (tests and `dysco stats`). */
  value(name: string, labels: Labels = {}): number {
    const f = this.families.get(name);
    if (!f) return 0;
    if (f.collect) return f.collect().find((s) => labelKey(s.labels) === labelKey(labels))?.value ?? 0;
    return f.values.get(labelKey(labels))?.value ?? 0;
  }

  /** Every series, as a flat object `name{labels}` -> value. */
  snapshot(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, f] of this.families) {
      const series = f.collect ? f.collect() : [...f.values.values()];
      for (const s of series) out[`${name}${fmtLabels(s.labels)}`] = s.value;
    }
    return out;
  }

  render(): string {
    const lines: string[] = [];
    for (const [name, f] of this.families) {
      lines.push(`# HELP ${name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${f.type}`);
      const series = f.collect ? f.collect() : [...f.values.values()];
      for (const s of series) lines.push(`${name}${fmtLabels(s.labels)} ${s.value}`);
    }
    return `${lines.join('\n')}\n`;
  }

  /** Serves `/metrics` over HTTP. */
  serve(host: string, port: number): Promise<Server> {
    const server = createServer((req, res) => {
      if (new URL(req.url ?? '/', 'http://x').pathname !== '/metrics') {
        res.writeHead(404).end('only /metrics here\n');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(this.render());
    });
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve(server));
    });
  }

  private family(name: string, help: string, type: Family['type']): Family {
    let f = this.families.get(name);
    if (f && f.type !== type) throw new Error(`metric ${name} is a ${f.type}, not a ${type}`);
    if (!f) {
      f = { help, type, values: new Map() };
      this.families.set(name, f);
    }
    return f;
  }
}

function fmtLabels(l: Labels): string {
  const e = Object.entries(l);
  return e.length === 0 ? '' : `{${e.map(([k, v]) => `${k}="${esc(v)}"`).join(',')}}`;
}
