// A short flow against a live authd with the fetch client orval generated
// from openapi.yaml (scripts/check-clients.sh): every answer must have its
// documented status and the documented shape.
//
//     node build/drivers/orval.js BASE_URL

import { getMe, getOpenApi, listSessions, login, logout, register } from '../generated/orval/authd';
import type { LoginResult, Me, Session, User, ValidationProblem, UnauthorizedProblem } from '../generated/orval/authd';
import { setBaseUrl } from '../orval-fetch';
import { type Check, fresh, makeCheck } from './check';

const check: Check = makeCheck('orval client');

async function main(baseUrl: string): Promise<void> {
  setBaseUrl(baseUrl);
  const { username, email, password } = fresh('orval');

  const invalid = await register({ username, email, password, password2: `${password}-not-the-same` });
  check(invalid.status === 422, 'a mismatched password2 is 422');
  const problem: ValidationProblem = invalid.data;
  check(problem.type === 'urn:authd:problem:validation-error', 'its type is validation-error');
  check(Array.isArray(problem.errors['password2']), 'its errors name password2');

  const created = await register({ username, email, password, password2: password });
  check(created.status === 201, 'register is 201');
  const user: User = created.data;
  check(user.username === username && user.last_login_at === null, 'register returns the new User');

  const loggedIn = await login({ username, password });
  check(loggedIn.status === 200, 'login is 200');
  const result: LoginResult = loggedIn.data;
  check(result.user.id === user.id && result.token_type === 'Bearer', 'login returns the user and a bearer token');

  const headers = { Authorization: `Bearer ${result.access_token}` };
  const me = await getMe({ headers });
  check(me.status === 200, 'GET /api/me is 200');
  const current: Me = me.data;
  check(current.id === user.id && current.session.remember === false, 'Me names the user and the session');
  check(current.csrf_token === undefined, 'a bearer request gets no csrf_token');

  const sessions = await listSessions({ headers });
  check(sessions.status === 200, 'GET /api/sessions is 200');
  const listed: Session[] = sessions.data;
  check(
    listed.filter((s) => s.current).map((s) => s.id).join() === current.session.id,
    'the current session is the one in Me',
  );

  const document = await getOpenApi();
  check(
    document.status === 200 && typeof document.data === 'string' && document.data.startsWith('openapi: 3.1'),
    'GET /api/openapi.yaml returns the document as text',
  );

  const out = await logout(undefined, undefined, { headers });
  check(out.status === 204, 'logout is 204');

  const after = await getMe({ headers });
  check(after.status === 401, 'the revoked token gets 401');
  const unauthorized: UnauthorizedProblem = after.data;
  check(unauthorized.type === 'urn:authd:problem:unauthenticated', 'the 401 is an UnauthorizedProblem of type unauthenticated');
  check(after.headers.get('www-authenticate') === 'Bearer realm="authd"', 'with WWW-Authenticate');
}

main(process.argv[2] ?? '').catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
