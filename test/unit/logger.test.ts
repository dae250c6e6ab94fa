import { ReplyError } from "ioredis";
import { createLogger } from "../../src/logger";

describe("Log lines never carry a Redis command's arguments", () => {
  it("redacts them when an ioredis error is logged as err", () => {
    const lines: string[] = [];
    const logger = createLogger("info", { write: (line: string) => void lines.push(line) });
    const error = Object.assign(new ReplyError("WRONGPASS invalid username-password pair or user is disabled."), {
      command: { name: "auth", args: ["scs", "hunter2"] },
    });

    logger.error({ err: error }, "internal error");

    expect(lines).toHaveLength(1);
    expect(lines[0]).not.toContain("hunter2");
    expect(JSON.parse(lines[0])).toMatchObject({ err: { message: error.message, command: { name: "auth" } } });
  });
});
