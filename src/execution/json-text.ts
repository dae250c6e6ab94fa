/**
 * JSON that is already text — a stored context field exactly as the session document keeps it (canonical, as
 * JSON.stringify writes it) — carried through execution as a leaf value, so that the answer writer
 * (`writeJsonAnswer`) copies its bytes into the answer instead of the server parsing the document and serializing
 * the values again. That parse and stringify cost ~1 ms of CPU per read of a 64 KB context; the copy costs a memcpy.
 *
 * `text` may also be a fragment: a stored list's entries without their brackets (`{…},{…}`, or empty). A list field
 * resolves to `[fragment]`, a one-entry list whose entry writes as all of the entries. Only writeJsonAnswer knows
 * that; so a fragment is made only for answers it writes (RequestContext.answerWritesJsonText).
 */
export class JsonText {
  constructor(
    /** The UTF-8 bytes, or the same as a string. */
    readonly text: Buffer | string,
  ) {}

  /**
   * For any other serializer (a subscription's message goes through graphql-ws's JSON.stringify): the value
   * itself. Right only for a whole value, never a fragment (see above).
   */
  toJSON(): unknown {
    return JSON.parse(typeof this.text === "string" ? this.text : this.text.toString("utf8"));
  }
}

/**
 * A stored list's entries as one fragment (its text without the brackets), for a list field of an answer written by
 * writeJsonAnswer: the field resolves to `[entriesOf(list)]`.
 */
export function entriesOf(list: JsonText): JsonText {
  const { text } = list;
  return new JsonText(typeof text === "string" ? text.slice(1, -1) : text.subarray(1, -1));
}
