/// <reference types="vite/client" />

interface ImportMetaEnv {
  /** The service's `/graphql` URL, when the page is not served from the same origin. */
  readonly VITE_GRAPHQL_URL?: string;
}
