import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";

/**
 * Where an interrupted run left off, in a small JSON file beside its output (or input): written whole to a
 * temporary file and renamed over the old one, so a run killed at any moment leaves either the previous state or
 * the new one, never half of one. A finished run removes it.
 */
export class RunState<T extends object> {
  constructor(readonly path: string) {}

  /** The saved state, or undefined when there is none; throws when the file is there but is not such a state. */
  read(matches: (state: Partial<T>) => boolean): T | undefined {
    if (!existsSync(this.path)) return undefined;
    let state: unknown;
    try {
      state = JSON.parse(readFileSync(this.path, "utf8"));
    } catch {
      throw new Error(`${this.path} is not a state file this tool wrote; remove it to start over`);
    }
    if (typeof state !== "object" || state === null || !matches(state as Partial<T>)) return undefined;
    return state as T;
  }

  save(state: T): void {
    const temporary = `${this.path}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(state)}\n`);
    renameSync(temporary, this.path);
  }

  remove(): void {
    rmSync(this.path, { force: true });
  }
}
