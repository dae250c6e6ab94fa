/**
 * A server's memory after a full garbage collection, through the V8 inspector of a process started with
 * `--inspect=127.0.0.1:<port>` (the Chrome DevTools Protocol over a WebSocket): `HeapProfiler.collectGarbage`, then
 * `process.memoryUsage()` evaluated in the process. Only for a process the bench started for that purpose: an
 * attached inspector is not how production runs.
 */
import { WebSocket } from "ws";

export interface ProcessMemory {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

export class InspectorClient {
  private nextId = 1;
  private readonly waiting = new Map<number, (result: unknown) => void>();

  private constructor(private readonly socket: WebSocket) {
    socket.on("message", (data: Buffer) => {
      const message = JSON.parse(data.toString()) as { id?: number; result?: unknown; error?: unknown };
      if (message.id === undefined) return; // an event
      this.waiting.get(message.id)?.(message.error ? { error: message.error } : message.result);
      this.waiting.delete(message.id);
    });
  }

  /** Connects to the first target the inspector on `port` lists. */
  static async connect(port: number): Promise<InspectorClient> {
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as {
      webSocketDebuggerUrl: string;
    }[];
    const socket = new WebSocket(targets[0].webSocketDebuggerUrl, { perMessageDeflate: false });
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    });
    return new InspectorClient(socket);
  }

  /** Two full collections (the first may leave finalized objects for the second), then process.memoryUsage(). */
  async memoryAfterGc(): Promise<ProcessMemory> {
    await this.call("HeapProfiler.collectGarbage");
    await this.call("HeapProfiler.collectGarbage");
    const result = (await this.call("Runtime.evaluate", {
      expression: "JSON.stringify(process.memoryUsage())",
      returnByValue: true,
    })) as { result?: { value?: string }; error?: unknown };
    if (typeof result.result?.value !== "string")
      throw new Error(`process.memoryUsage() through the inspector: ${JSON.stringify(result)}`);
    return JSON.parse(result.result.value) as ProcessMemory;
  }

  close(): void {
    this.socket.close();
  }

  private call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.nextId++;
    return new Promise((resolve) => {
      this.waiting.set(id, resolve);
      this.socket.send(JSON.stringify({ id, method, params }));
    });
  }
}
