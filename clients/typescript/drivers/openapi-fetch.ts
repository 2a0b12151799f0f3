// A short flow against a live authd with openapi-fetch, typed by the
// types openapi-typescript generated from openapi.yaml
// (scripts/check-clients.sh): every answer must have its documented
// status and the documented shape.
//
//     node build/drivers/openapi-fetch.js BASE_URL

import createClient from 'openapi-fetch';
import type { paths, Me, User, LoginResult, Session, ValidationProblem, UnauthorizedProblem } from '../generated/openapi-typescript/authd';
import { type Check, fresh, makeCheck } from './check';

const check: Check = makeCheck('openapi-fetch client');

async function main(baseUrl: string): Promise<void> {
  const client = createClient<paths>({ baseUrl });
  const { username, email, password } = fresh('ts');

  const invalid = await client.POST('/api/register', {
    body: { username, email, password, password2: `${password}-not-the-same` },
  });
  check(invalid.response.status === 422 && invalid.error?.status === 422, 'a mismatched password2 is 422');
  // Narrowed by its status, the error is the ValidationProblem, with `errors` required.
  const problem: ValidationProblem = invalid.error;
  check(problem.type === 'urn:authd:problem:validation-error', 'its type is validation-error');
  check(Array.isArray(problem.errors['password2']), 'its errors name password2');

  const created = await client.POST('/api/register', { body: { username, email, password, password2: password } });
  check(created.response.status === 201 && created.data !== undefined, 'register is 201 with a body');
  const user: User = created.data;
  check(user.username === username && user.last_login_at === null, 'register returns the new User');

  const loggedIn = await client.POST('/api/login', { body: { username, password } });
  check(loggedIn.response.status === 200 && loggedIn.data !== undefined, 'login is 200 with a body');
  const result: LoginResult = loggedIn.data;
  check(result.user.id === user.id && result.token_type === 'Bearer', 'login returns the user and a bearer token');

  const headers = { Authorization: `Bearer ${result.access_token}` };
  const me = await client.GET('/api/me', { headers });
  check(me.response.status === 200 && me.data !== undefined, 'GET /api/me is 200 with a body');
  const current: Me = me.data;
  check(current.id === user.id && current.session.remember === false, 'Me names the user and the session');
  check(current.csrf_token === undefined, 'a bearer request gets no csrf_token');

  const sessions = await client.GET('/api/sessions', { headers });
  check(sessions.response.status === 200 && sessions.data !== undefined, 'GET /api/sessions is 200 with a body');
  const listed: Session[] = sessions.data;
  check(
    listed.filter((s) => s.current).map((s) => s.id).join() === current.session.id,
    'the current session is the one in Me',
  );

  const document = await client.GET('/api/openapi.yaml', { parseAs: 'text' });
  check(
    document.response.status === 200 && typeof document.data === 'string' && document.data.startsWith('openapi: 3.1'),
    'GET /api/openapi.yaml returns the document as text',
  );

  const out = await client.POST('/api/logout', { headers });
  check(out.response.status === 204, 'logout is 204');

  const after = await client.GET('/api/me', { headers });
  check(after.response.status === 401 && after.error?.status === 401, 'the revoked token gets 401 with a problem');
  const unauthorized: UnauthorizedProblem = after.error;
  check(unauthorized.type === 'urn:authd:problem:unauthenticated', 'the 401 is an UnauthorizedProblem of type unauthenticated');
  check(after.response.headers.get('www-authenticate') === 'Bearer realm="authd"', 'with WWW-Authenticate');
}

main(process.argv[2] ?? '').catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
