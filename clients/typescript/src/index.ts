// Vitrina's TypeScript client: `new VitrinaClient(baseUrl, { apiKey })`, one method per
// operation of the API, the models as types, and a batching `Tracker`.

export { DEFAULT_RETRY, repeatable, type ClientOptions, type RetryPolicy, VitrinaClient, VitrinaError } from "./client.js";
export type * from "./models.js";
export { OPERATIONS, type Operation } from "./operations.js";
export { MAX_BATCH, Tracker } from "./tracking.js";
