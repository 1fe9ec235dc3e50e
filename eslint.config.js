// typescript-eslint with the recommended type-checked rules (see README, "Tests"): the rules
// that need types (floating promises, unsafe any, misused promises) are the ones that catch
// bugs in an async server; `npm test` runs it.
import tseslint from 'typescript-eslint'

export default tseslint.config(
  // Generated code, frozen migrations and build output are not linted.
  { ignores: ['dist/**', 'node_modules/**', 'src/**/generated/**', 'migrations/0*.ts', 'schema/**', 'eslint.config.js'] },
  ...tseslint.configs.recommendedTypeChecked,
  { languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } } },
  {
    rules: {
      // Services are plain objects of closures (no `this`), so passing their methods along is safe.
      '@typescript-eslint/unbound-method': 'off',
      // Fastify plugins and methods that implement Promise-returning interfaces need no await.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
    },
  },
  {
    // Tests read JSON answers as `any` on purpose, and tap's subtests are promises it tracks itself.
    files: ['test/**/*.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/require-await': 'off',
      // tap tracks its subtests itself: `t.test(...)` need not be awaited.
      '@typescript-eslint/no-floating-promises': ['error', { allowForKnownSafePromises: [{ from: 'package', name: 'PromiseWithSubtest', package: '@tapjs/core' }] }],
    },
  },
)
