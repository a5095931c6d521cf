// /api/docs: the vendored Swagger UI (swagger-ui-bundle.js, a classic script that
// defines SwaggerUIBundle) rendering this node's own OpenAPI document. No request
// leaves the origin: the spec validator badge, which would call a public service,
// is off.
window.ui = window.SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  validatorUrl: null,
  deepLinking: true,
  tryItOutEnabled: false,
});
