import {
  getNamedType,
  getOperationAST,
  Kind,
  type DirectiveNode,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLNamedType,
  type GraphQLSchema,
  type SelectionSetNode,
  type ValueNode,
  isObjectType,
} from "graphql";

/**
 * The fields whose value is read from their parent value alone — never from the caller, the context, the time or the
 * store — so an event's answer to a selection of them is the same for every subscriber of the session. Only these
 * may be executed once and shared; a selection that reaches any other field (one added later, a field resolver
 * that depends on who asks) is executed per subscriber, as before. A test lists every field of these types, so a new
 * field is a decision: add it here only if it reads its parent value and nothing else.
 */
export const SHARED_FIELDS: ReadonlySet<string> = new Set([
  "SessionContextEvent.type",
  "SessionContextEvent.sessionId",
  "SessionContextEvent.userId",
  "SessionContextEvent.version",
  "SessionContextEvent.operation",
  "SessionContextEvent.change",
  "SessionContextEvent.context",
  "SessionContextEvent.resync",
  "SessionContext.id",
  "SessionContext.tenantId",
  "SessionContext.userId",
  "SessionContext.sessionId",
  "SessionContext.conversationState",
  "SessionContext.interruptedQueries",
  "SessionContext.recentInteractions",
  "SessionContext.userPreferences",
  "SessionContext.storedAt",
  "SessionContext.lastUpdated",
  "SessionContext.expiresAt",
  "SessionContext.ttlSeconds",
  "SessionContext.version",
]);

/** The root field whose live events may be shared: its resolver returns the event it is given, whatever its args. */
export const SHARED_ROOT_FIELD = "sessionContextChanged";

/** How one operation of one document runs on a live connection. */
export interface SharingPlan {
  /** The subscription's root field (its response key is not needed: the answer is executed whole). */
  readonly rootField: string;
  /**
   * For a shareable operation, what its answer to an event depends on besides the event: the document, the
   * operation, and the variables used below the root field or in directives. Two subscriptions with the same key get
   * the same bytes for the same event. Undefined: executed per subscriber.
   */
  sharingKey(variables: Readonly<Record<string, unknown>> | null | undefined): string | undefined;
}

interface Analysis {
  readonly rootField: string | undefined;
  /** Variable names the answer depends on, sorted; undefined: not shareable. */
  readonly variables: readonly string[] | undefined;
  readonly documentId: number;
}

/**
 * Reads each (document, operation) once: documents are shared between subscriptions (SubscriptionDocuments keeps
 * one parsed copy per text), so the plan is kept with the document object and goes when it goes.
 */
export class SharingPlans {
  private readonly analyses = new WeakMap<DocumentNode, Map<string, Analysis>>();
  private nextDocumentId = 1;

  constructor(private readonly schema: GraphQLSchema) {}

  planOf(document: DocumentNode, operationName: string | null | undefined): SharingPlan | undefined {
    let byOperation = this.analyses.get(document);
    if (byOperation === undefined) this.analyses.set(document, (byOperation = new Map()));
    const name = operationName ?? "";
    let analysis = byOperation.get(name);
    if (analysis === undefined) {
      analysis = this.analyse(document, operationName ?? undefined);
      byOperation.set(name, analysis);
    }
    const { rootField, variables, documentId } = analysis;
    if (rootField === undefined) return undefined;
    return {
      rootField,
      sharingKey: (values) => {
        if (variables === undefined) return undefined;
        const picked: unknown[] = [];
        for (const variable of variables) picked.push(values?.[variable] ?? null);
        return `${documentId}\u0000${name}\u0000${JSON.stringify(picked)}`;
      },
    };
  }

  private analyse(document: DocumentNode, operationName: string | undefined): Analysis {
    const documentId = this.nextDocumentId++;
    const operation = getOperationAST(document, operationName);
    const subscriptionType = this.schema.getSubscriptionType();
    if (!operation || operation.operation !== "subscription" || !subscriptionType) {
      return { rootField: undefined, variables: undefined, documentId };
    }
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const definition of document.definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
    }
    const walk = new SelectionWalk(this.schema, fragments);
    // Validation let exactly one root field through (directives on it, or around it, are collected as usual).
    const root = walk.rootField(operation.selectionSet);
    if (root === undefined) return { rootField: undefined, variables: undefined, documentId };
    walk.directives(operation.directives);
    const rootName = root.name.value;
    walk.directives(root.directives);
    if (rootName !== SHARED_ROOT_FIELD || root.selectionSet === undefined) {
      return { rootField: rootName, variables: undefined, documentId };
    }
    const eventType = getNamedType(subscriptionType.getFields()[rootName]?.type);
    const pure = eventType !== undefined && walk.selections(root.selectionSet, eventType);
    return { rootField: rootName, variables: pure ? [...walk.variables].sort() : undefined, documentId };
  }
}

/** Walks selections: are they all SHARED_FIELDS, and which variables do they use? */
class SelectionWalk {
  readonly variables = new Set<string>();
  private readonly visiting = new Set<string>();

  constructor(
    private readonly schema: GraphQLSchema,
    private readonly fragments: ReadonlyMap<string, FragmentDefinitionNode>,
  ) {}

  rootField(selectionSet: SelectionSetNode): FieldNode | undefined {
    for (const selection of selectionSet.selections) {
      this.directives(selection.directives);
      if (selection.kind === Kind.FIELD) return selection;
      const fragment = selection.kind === Kind.INLINE_FRAGMENT ? selection : this.fragments.get(selection.name.value);
      if (fragment === undefined) return undefined;
      this.directives(fragment.directives);
      const found = this.rootField(fragment.selectionSet);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  selections(selectionSet: SelectionSetNode, parent: GraphQLNamedType): boolean {
    for (const selection of selectionSet.selections) {
      this.directives(selection.directives);
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        if (name === "__typename") continue;
        if (!isObjectType(parent) || !SHARED_FIELDS.has(`${parent.name}.${name}`)) return false;
        for (const argument of selection.arguments ?? []) this.values(argument.value);
        const field = parent.getFields()[name];
        if (selection.selectionSet && !this.selections(selection.selectionSet, getNamedType(field.type))) return false;
        continue;
      }
      let fragment: { readonly selectionSet: SelectionSetNode; readonly typeCondition?: { name: { value: string } } };
      if (selection.kind === Kind.INLINE_FRAGMENT) {
        fragment = selection;
      } else {
        const name = selection.name.value;
        const definition = this.fragments.get(name);
        if (definition === undefined || this.visiting.has(name)) return false;
        this.directives(definition.directives);
        fragment = definition;
      }
      const type = fragment.typeCondition ? this.schema.getType(fragment.typeCondition.name.value) : parent;
      if (!type) return false;
      const name = selection.kind === Kind.FRAGMENT_SPREAD ? selection.name.value : undefined;
      if (name) this.visiting.add(name);
      const pure = this.selections(fragment.selectionSet, type);
      if (name) this.visiting.delete(name);
      if (!pure) return false;
    }
    return true;
  }

  directives(directives: readonly DirectiveNode[] | undefined): void {
    for (const directive of directives ?? [])
      for (const argument of directive.arguments ?? []) this.values(argument.value);
  }

  private values(value: ValueNode): void {
    if (value.kind === Kind.VARIABLE) this.variables.add(value.name.value);
    else if (value.kind === Kind.LIST) for (const item of value.values) this.values(item);
    else if (value.kind === Kind.OBJECT) for (const field of value.fields) this.values(field.value);
  }
}
