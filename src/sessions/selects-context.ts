import { Kind, type FieldNode, type GraphQLResolveInfo, type SelectionSetNode } from "graphql";

/** The SessionContext fields whose values are the stored context (anything else comes from the document's header). */
const CONTEXT_FIELDS = new Set(["conversationState", "interruptedQueries", "recentInteractions", "userPreferences"]);

// By the field's node in the (cached, parsed) document: the same node answers the same on every request.
const answered = new WeakMap<FieldNode, boolean>();

/**
 * Whether the answer to this field (a write returning a SessionContext) selects any context field, directly or
 * through fragments. When not, the store need not send the written context back (a merge into a 64 KB context
 * then costs what a small one does). `@skip`/`@include` are not looked at: such a field counts as selected.
 */
export function selectsContext(info: GraphQLResolveInfo): boolean {
  const node = info.fieldNodes[0];
  let selects = info.fieldNodes.length === 1 ? answered.get(node) : undefined;
  if (selects === undefined) {
    selects = info.fieldNodes.some((field) => field.selectionSet && inSelection(field.selectionSet, info, new Set()));
    if (info.fieldNodes.length === 1) answered.set(node, selects);
  }
  return selects;
}

function inSelection(set: SelectionSetNode, info: GraphQLResolveInfo, seen: Set<string>): boolean {
  return set.selections.some((selection) => {
    switch (selection.kind) {
      case Kind.FIELD:
        return CONTEXT_FIELDS.has(selection.name.value);
      case Kind.INLINE_FRAGMENT:
        return inSelection(selection.selectionSet, info, seen);
      case Kind.FRAGMENT_SPREAD: {
        const name = selection.name.value;
        const fragment = info.fragments[name];
        if (fragment === undefined || seen.has(name)) return false;
        seen.add(name);
        return inSelection(fragment.selectionSet, info, seen);
      }
    }
  });
}
