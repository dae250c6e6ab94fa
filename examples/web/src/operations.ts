import { gql, type TypedDocumentNode } from "@apollo/client";

/** One message of the session, as this page appends it to `recentInteractions`. */
export interface Interaction {
  from?: string;
  text?: string;
  at?: string;
}

export interface Session {
  __typename?: "SessionContext";
  id: string;
  userId: string;
  sessionId: string;
  version: number;
  storedAt: string;
  lastUpdated: string;
  conversationState: Record<string, unknown>;
  recentInteractions: Interaction[];
  userPreferences: Record<string, unknown>;
}

export interface SessionEvent {
  type: "UPDATED" | "DELETED";
  userId: string;
  sessionId: string;
  version: number;
  operation: "STORE" | "MERGE" | "RESTORE" | null;
  change: Record<string, unknown> | null;
  context: Session | null;
  resync: boolean;
}

// userId and sessionId are the cache's key fields (examples/apollo-client/session-cache.ts): select them always.
export const SESSION_FIELDS: TypedDocumentNode<Session> = gql`
  fragment SessionFields on SessionContext {
    id
    userId
    sessionId
    version
    storedAt
    lastUpdated
    conversationState
    recentInteractions
    userPreferences
  }
`;

export const SESSION: TypedDocumentNode<{ sessionContext: Session | null }, { sessionId: string }> = gql`
  query Session($sessionId: ID!) {
    sessionContext(sessionId: $sessionId) {
      ...SessionFields
    }
  }
  ${SESSION_FIELDS}
`;

export const MERGE: TypedDocumentNode<{ mergeSessionContext: Session }, { input: Record<string, unknown> }> = gql`
  mutation Merge($input: SessionContextInput!) {
    mergeSessionContext(input: $input) {
      ...SessionFields
    }
  }
  ${SESSION_FIELDS}
`;

export const FOLLOW: TypedDocumentNode<
  { sessionContextChanged: SessionEvent },
  { sessionId: string; afterVersion: number }
> = gql`
  subscription Follow($sessionId: ID!, $afterVersion: Int) {
    sessionContextChanged(sessionId: $sessionId, afterVersion: $afterVersion) {
      type
      userId
      sessionId
      version
      operation
      change
      resync
      context {
        ...SessionFields
      }
    }
  }
  ${SESSION_FIELDS}
`;
