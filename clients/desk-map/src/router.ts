// /desks/ is the plan, /desks/monitor the monitoring panel (desk admins and operators),
// /desks/login the login. Tidings answers every /desks/* path with the app's page.
import { createRouter, createWebHistory } from "vue-router";
import { useSession } from "@/stores/session";

export const router = createRouter({
  history: createWebHistory("/desks/"),
  routes: [
    { path: "/", name: "plan", component: () => import("@/views/PlanView.vue") },
    { path: "/monitor", name: "monitor", component: () => import("@/views/MonitorView.vue") },
    { path: "/login", name: "login", component: () => import("@/views/LoginView.vue") },
    { path: "/:rest(.*)", redirect: "/" },
  ],
});

router.beforeEach(async (to) => {
  const session = useSession();
  if (to.name !== "login" && !session.loggedIn) return { name: "login" };
  // A page opened at /desks/monitor: know the user's rights before deciding.
  if (session.loggedIn) await session.ensureRights().catch(() => undefined);
  if (to.name === "monitor" && !session.mayMonitor) return { name: "plan" };
  return true;
});
