import type { Config } from "jest";

const config: Config = {
  testEnvironment: "node",
  roots: ["<rootDir>/test"],
  testMatch: ["**/*.test.ts"],
  // The soak loads both cores for minutes: it runs on its own (`npm run test:soak`), never beside other tests.
  testPathIgnorePatterns: ["/node_modules/", "<rootDir>/test/soak/"],
  setupFiles: ["reflect-metadata"],
  transform: {
    // jose is published as ESM only; ts-jest turns it (and our TypeScript) into CommonJS for Jest.
    "^.+\\.[tj]s$": ["ts-jest", { tsconfig: "tsconfig.test.json" }],
  },
  transformIgnorePatterns: ["/node_modules/(?!jose/)"],
  // Each test file starts its own redis-server processes; two workers match CI's two cores.
  maxWorkers: 2,
  testTimeout: 30_000,
};

export default config;
