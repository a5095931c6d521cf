// eslint for the JavaScript client: the recommended rules, browser and Node globals.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", "types/", "*.tgz"] },
  js.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser, ...globals.node },
    },
    rules: {
      "no-unused-vars": ["error", { argsIgnorePattern: "^_" }],
      eqeqeq: ["error", "always"],
      "prefer-const": "error",
      "no-var": "error",
    },
  },
];
