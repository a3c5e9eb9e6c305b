/**
 * Linux signal names and numbers (x86_64), for exit statuses and reports.
 *
 * @module
 */

const NUMBERS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

/**
 * Number of a signal name; 0 when unknown.
 *
 * @example
 * ```ts
 * signalNumber("SIGSEGV"); // 11
 * ```
 */
export function signalNumber(name: string | null): number {
  return name === null ? 0 : NUMBERS[name] ?? 0;
}

/**
 * Name of a signal number, or `signal N`.
 *
 * @example
 * ```ts
 * signalName(6); // "SIGABRT"
 * ```
 */
export function signalName(number: number): string {
  for (const [name, value] of Object.entries(NUMBERS)) if (value === number) return name;
  return `signal ${number}`;
}
