// ESLint 9 flat config: Vue's recommended rules and typescript-eslint's, on the app's
// sources. `npm run lint` (and so `make lint`) fails on any warning. The template
// layout rules (line breaks around attributes and tags) are off: they are formatting,
// not correctness, and the templates keep the project's compact 100-column style.
import pluginVue from "eslint-plugin-vue";
import { defineConfigWithVueTs, vueTsConfigs } from "@vue/eslint-config-typescript";

export default defineConfigWithVueTs(
  { ignores: ["node_modules/**", "dist/**"] },
  pluginVue.configs["flat/recommended"],
  vueTsConfigs.recommended,
  {
    rules: {
      "vue/no-v-html": "error",
      "vue/max-attributes-per-line": "off",
      "vue/first-attribute-linebreak": "off",
      "vue/html-closing-bracket-newline": "off",
      "vue/multiline-html-element-content-newline": "off",
      "vue/html-indent": "off",
      "vue/singleline-html-element-content-newline": "off",
      "vue/html-self-closing": "off",
      "vue/multi-word-component-names": "off",
    },
  },
);
