// Calls to Vitrina's own API with the key the person signed in with (kept for this browser
// tab only, in sessionStorage). Errors arrive in the API's one error shape and are raised as
// ApiError with its message.

const KEY = "vitrina.console.key";

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : `the server answered ${status}`);
    this.status = status;
    this.body = body;
  }
}

export const key = () => sessionStorage.getItem(KEY);
export const setKey = (k) => (k ? sessionStorage.setItem(KEY, k) : sessionStorage.removeItem(KEY));

/** One request: JSON in and out (text with `{ text: true }`). A 401 also tells the page,
 * unless `quiet` (the sign-in check, which handles it itself). */
export async function api(path, { method = "GET", body, text = false, signal, quiet = false } = {}) {
  const headers = { Accept: text ? "text/plain" : "application/json" };
  const k = key();
  if (k) headers.Authorization = `Bearer ${k}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  if (r.ok && text) return r.text();
  let data = null;
  try {
    data = await r.json();
  } catch {
    data = null;
  }
  if (!r.ok) {
    if (r.status === 401 && !quiet) window.dispatchEvent(new CustomEvent("vitrina:unauthorized"));
    throw new ApiError(r.status, data);
  }
  return data;
}

/** `path` with the query parameters that are set. */
export function withQuery(path, params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

export const enc = encodeURIComponent;
