// orval settings for scripts/check-clients.sh: a fetch client in one file,
// generated from openapi.yaml. Requests go through orval-fetch.ts, which
// puts the server's base URL in front of the paths.
module.exports = {
  authd: {
    input: { target: '../../openapi.yaml' },
    output: {
      target: './generated/orval/authd.ts',
      client: 'fetch',
      // One file: orval 8 asks for Node.js 22, and on Node.js 20 its
      // split modes fail (Map.groupBy); the single-file mode works.
      mode: 'single',
      clean: true,
      override: {
        mutator: { path: './orval-fetch.ts', name: 'authdFetch' },
      },
    },
  },
};
