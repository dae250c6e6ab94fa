import { ApolloServerErrorCode } from "@apollo/server/errors";
import { ErrorCode } from "../../src/errors/error-code";

describe("error codes", () => {
  it("names Apollo's codes with Apollo's own strings, so clients see one vocabulary", () => {
    for (const [name, code] of Object.entries(ApolloServerErrorCode)) {
      if (name === "PERSISTED_QUERY_NOT_SUPPORTED") continue; // persisted queries are always on here
      expect(ErrorCode[name as keyof typeof ErrorCode]).toBe(code);
    }
  });
});
