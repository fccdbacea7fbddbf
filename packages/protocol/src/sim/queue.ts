/** A time-ordered event queue; ties keep insertion order, so runs are deterministic. */
export class EventQueue<T> {
  private heap: { t: number; n: number; v: T }[] = [];
  private n = 0;

  get size(): number {
    return this.heap.length;
  }

  push(t: number, v: T): void {
    const h = this.heap;
    h.push({ t, n: this.n++, v });
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): { t: number; v: T } | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return { t: top.t, v: top.v };
  }

  private less(a: { t: number; n: number }, b: { t: number; n: number }): boolean {
    return a.t < b.t || (a.t === b.t && a.n < b.n);
  }
}
