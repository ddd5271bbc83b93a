/** The REST client: bearer token, language, JSON errors as ApiError, and retries for network drops. */

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }

  /** A network failure or a server that is restarting: worth retrying, unlike a 4xx. */
  get transient(): boolean {
    return this.status === 0 || this.status === 502 || this.status === 503 || this.status === 504;
  }
}

export interface ApiOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Attempts for transient failures (network drop, 502-504), with a short backoff in between. */
  retries?: number;
}

export interface ClientConfig {
  base: string;
  token: () => string | null;
  locale: () => string;
  /** Called once per 401 invalid_token: the session expired or was revoked. */
  onUnauthenticated: () => void;
  fetchImpl?: typeof fetch;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class Api {
  constructor(private readonly config: ClientConfig) {}

  async request<T>(path: string, options: ApiOptions = {}): Promise<T> {
    const retries = options.retries ?? (options.method && options.method !== "GET" ? 0 : 2);
    let attempt = 0;
    for (;;) {
      try {
        return await this.once<T>(path, options);
      } catch (error) {
        if (error instanceof ApiError && error.transient && attempt < retries) {
          attempt += 1;
          await sleep(300 * 2 ** attempt);
          continue;
        }
        throw error;
      }
    }
  }

  private async once<T>(path: string, options: ApiOptions): Promise<T> {
    const headers: Record<string, string> = { "Accept-Language": this.config.locale(), ...options.headers };
    const token = this.config.token();
    if (token) headers.Authorization = `Bearer ${token}`;
    let body: BodyInit | undefined;
    if (options.body instanceof FormData || options.body instanceof Blob) {
      body = options.body;
    } else if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const fetchImpl = this.config.fetchImpl ?? fetch;
    let response: Response;
    try {
      response = await fetchImpl(this.config.base + path, {
        method: options.method ?? "GET", headers, body, signal: options.signal,
      });
    } catch (error) {
      if ((error as Error).name === "AbortError") throw error;
      throw new ApiError(0, "network_error", (error as Error).message || "network error");
    }
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    let payload: unknown = undefined;
    try {
      payload = text ? JSON.parse(text) : undefined;
    } catch {
      payload = undefined;
    }
    if (!response.ok) {
      const err = (payload as { error?: { code?: string; message?: string; details?: Record<string, unknown> } })?.error;
      const apiError = new ApiError(response.status, err?.code ?? `http_${response.status}`,
        err?.message ?? response.statusText, err?.details ?? {});
      if (response.status === 401 && token) this.config.onUnauthenticated();
      throw apiError;
    }
    return payload as T;
  }

  get<T>(path: string, options: ApiOptions = {}) { return this.request<T>(path, { ...options, method: "GET" }); }
  post<T>(path: string, body?: unknown, options: ApiOptions = {}) {
    return this.request<T>(path, { ...options, method: "POST", body });
  }
  patch<T>(path: string, body?: unknown, options: ApiOptions = {}) {
    return this.request<T>(path, { ...options, method: "PATCH", body });
  }
  put<T>(path: string, body?: unknown, options: ApiOptions = {}) {
    return this.request<T>(path, { ...options, method: "PUT", body });
  }
  delete<T>(path: string, options: ApiOptions = {}) { return this.request<T>(path, { ...options, method: "DELETE" }); }
}

/** Builds a query string from the defined values only. */
export function query(params: Record<string, string | number | boolean | null | undefined>): string {
  const parts = Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== null && v !== "")
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`);
  return parts.length ? `?${parts.join("&")}` : "";
}
