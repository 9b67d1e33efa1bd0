/** Progress lines for the bench: on stderr, so stdout stays one JSON document. */
export function benchLog(name = 'bench'): (msg: string) => void {
  return (msg) => {
    process.stderr.write(`${name}: ${msg}\n`);
  };
}
