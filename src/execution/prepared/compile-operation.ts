import {
  BREAK,
  getNamedType,
  isAbstractType,
  TypeInfo,
  visit,
  visitWithTypeInfo,
  type DocumentNode,
  type GraphQLSchema,
} from "graphql";
import { compileQuery, isCompiledQuery, type CompiledQuery } from "graphql-jit";

/**
 * graphql-jit's compiled form of the document, or null for graphql-js to run it. Only documents over concrete
 * object types are compiled: with a union in between (`_entities` returns `[_Entity]!`) graphql-jit dropped a
 * failed list item where graphql-js gives null (the federation tests caught it), and introspection is left to
 * graphql-js as well.
 */
export function compileOperation(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
): CompiledQuery | null {
  const typeInfo = new TypeInfo(schema);
  let concrete = true;
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field(node) {
        const type = typeInfo.getType();
        const introspection = node.name.value.startsWith("__") && node.name.value !== "__typename";
        if (introspection || type === null || isAbstractType(getNamedType(type))) {
          concrete = false;
          return BREAK;
        }
        return undefined;
      },
    }),
  );
  if (!concrete) return null;
  try {
    const compiled = compileQuery(schema, document, operationName ?? undefined);
    return isCompiledQuery(compiled) ? compiled : null;
  } catch {
    return null; // a document graphql-jit cannot compile still runs, on graphql-js
  }
}
