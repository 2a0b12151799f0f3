// The fetch that orval's generated functions call: the server's base URL
// in front of the path, and the answer as { data, status, headers }, the
// shape the generated response types describe.

let baseUrl = '';

export function setBaseUrl(url: string): void {
  baseUrl = url.replace(/\/+$/, '');
}

export async function authdFetch<T>(url: string, init: RequestInit): Promise<T> {
  const response = await fetch(`${baseUrl}${url}`, init);
  const text = [204, 205, 304].includes(response.status) ? '' : await response.text();
  const type = response.headers.get('content-type') ?? '';
  const data: unknown = text && /[/+]json\b/.test(type) ? JSON.parse(text) : text || undefined;
  return { data, status: response.status, headers: response.headers } as T;
}
