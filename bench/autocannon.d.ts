/** The part of autocannon 9's programmatic API the bench uses (the package ships no types). */
declare module "autocannon" {
  import type { EventEmitter } from "node:events";

  namespace autocannon {
    interface Request {
      method?: string;
      path?: string;
      headers?: Record<string, string>;
      body?: string;
    }
    interface Client {
      setRequests(requests: Request[]): void;
    }
    interface Options {
      url: string;
      connections?: number;
      duration?: number;
      timeout?: number;
      setupClient?: (client: Client) => void;
      verifyBody?: (body: string) => boolean;
    }
    interface Result {
      duration: number;
      non2xx: number;
      errors: number;
      timeouts: number;
      mismatches: number;
      requests: { sent: number; total: number };
    }
  }

  function autocannon(
    options: autocannon.Options,
    callback: (error: Error | null, result: autocannon.Result) => void,
  ): EventEmitter;

  export = autocannon;
}
