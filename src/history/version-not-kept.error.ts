import { BadUserInputError } from "../errors/errors";

/** A restore named a version the session's history does not keep (too old, never written, or history off). */
export class VersionNotKeptError extends BadUserInputError {
  constructor(readonly version: number) {
    super("version", `version ${version} is not one of this session's kept versions (see sessionContextHistory)`);
  }
}
