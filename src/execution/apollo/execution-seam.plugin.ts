import type { ApolloServerPlugin } from "@apollo/server";
import type { RequestContext } from "../../context/request-context";
import type { ExecutionSeam } from "../execution-seam";

/**
 * Adapts Apollo's request pipeline to the ExecutionSeam: every rule of the seam runs on the operations Apollo
 * serves, at the points Apollo offers — refused credentials, the start of a request, the resolved operation
 * (admission: a refusal becomes the response, with its `http` status), and the response about to be sent.
 */
export function ExecutionSeamPlugin(seam: ExecutionSeam): ApolloServerPlugin<RequestContext> {
  return {
    async contextCreationDidFail({ error }) {
      seam.contextFailed(error);
    },
    async requestDidStart({ contextValue, request }) {
      const observed = seam.start({ path: "apollo", context: contextValue, operationName: request.operationName });
      return {
        async didResolveOperation({ document, operation, request: resolved }) {
          if (operation)
            seam.admit({ document, operation, variables: resolved.variables ?? {}, context: contextValue });
        },
        async willSendResponse({ operationName, operation, errors }) {
          observed.end({ operationName, operationType: operation?.operation, errors: errors ?? [] });
        },
      };
    },
  };
}
