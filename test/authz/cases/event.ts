// The workspace event stream: only publishWorkspaceEvent is a root Query/Mutation field (the
// subscriptions' authorization is tested over WebSocket and SSE in test/live). Workspace admins post.
import { admin, type MatrixCase } from "../world.js";

export const cases: MatrixCase[] = [
  {
    field: "Mutation.publishWorkspaceEvent",
    request: (world) => ({
      query: "mutation($i: PublishWorkspaceEventInput!) { publishWorkspaceEvent(input: $i) { cursor type } }",
      variables: { i: { workspaceId: world.workspaceId, type: "notification", data: { text: "matrix" } } },
    }),
    expect: admin,
  },
];
