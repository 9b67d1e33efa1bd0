/**
 * Ctrl-C / SIGTERM handling for batch commands: the first signal aborts gracefully (outputs are
 * finalised with what was done), a second one exits at once.
 */
export function interruptSignal(onFirst?: () => void): { signal: AbortSignal; dispose: () => void } {
  const controller = new AbortController();
  let count = 0;
  const handler = (sig: NodeJS.Signals): void => {
    count++;
    if (count === 1) {
      process.stderr.write(`\n${sig}: finishing the frames in flight and closing outputs (again to quit at once)\n`);
      onFirst?.();
      controller.abort();
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  return {
    signal: controller.signal,
    dispose: () => {
      process.off('SIGINT', handler);
      process.off('SIGTERM', handler);
    },
  };
}
