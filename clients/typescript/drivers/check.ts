// What both drivers assert with: a failed check ends the run (exit 1).

export type Check = (condition: boolean, what: string) => asserts condition;

export function makeCheck(client: string): Check {
  return (condition, what) => {
    if (!condition) {
      console.error(`${client}: FAILED: ${what}`);
      process.exit(1);
    }
    console.log(`${client}: ok: ${what}`);
  };
}

export function fresh(prefix: string): { username: string; email: string; password: string } {
  const tag = Math.random().toString(16).slice(2, 14);
  const username = `${prefix}_${tag}`;
  return { username, email: `${username}@example.com`, password: `${prefix}-${tag}-correct-horse` };
}
