/**
 * A connection's head and keep-alive deadline on one timer (direct.ts). Owns that timer only.
 */

/**
 * One timer per connection for the head and keep-alive deadlines. Moving a deadline later re-arms
 * nothing: the timer, when it fires, re-arms itself for what is left. So a busy kept-alive
 * connection costs no timer work per request.
 */
export class Deadline {
  private timer: NodeJS.Timeout | null = null;
  private fireAt = 0;
  private due = 0;
  constructor(private readonly onDue: () => void) {}
  set(ms: number): void {
    const due = performance.now() + ms;
    this.due = due;
    if (this.timer === null || this.fireAt > due + 1) this.arm(ms);
  }
  clear(): void {
    this.due = 0;
  }
  stop(): void {
    this.due = 0;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }
  private arm(ms: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.fireAt = performance.now() + ms;
    this.timer = setTimeout(this.fire, ms);
    this.timer.unref();
  }
  private readonly fire = (): void => {
    this.timer = null;
    if (this.due === 0) return;
    const left = this.due - performance.now();
    if (left > 1) return this.arm(left);
    this.due = 0;
    this.onDue();
  };
}
