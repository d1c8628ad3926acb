import { createRouter, createWebHashHistory } from 'vue-router'
import { allowedFor, homeFor } from './logic'
import { state } from './state'

export const router = createRouter({
  history: createWebHashHistory(),
  routes: [
    // The role's first screen (until the status is known, the overview: the shell then decides).
    { path: '/', redirect: () => (state.status ? homeFor(state.status.community ? state.status.role : null) : '/overview') },
    { path: '/welcome', component: () => import('./views/Welcome.vue') },
    { path: '/overview', component: () => import('./views/Overview.vue') },
    { path: '/roster', component: () => import('./views/Roster.vue') },
    { path: '/household/:id', component: () => import('./views/Household.vue'), props: true },
    { path: '/person/:id', component: () => import('./views/Person.vue'), props: true },
    { path: '/visits', component: () => import('./views/Visits.vue') },
    { path: '/requests', component: () => import('./views/Requests.vue') },
    { path: '/request/:id', component: () => import('./views/Request.vue'), props: true },
    { path: '/tasks', component: () => import('./views/Tasks.vue') },
    { path: '/task/:id', component: () => import('./views/Task.vue'), props: true },
    { path: '/board', component: () => import('./views/Board.vue') },
    { path: '/settings', component: () => import('./views/Settings.vue') },
  ],
})

// A screen the device's role does not have (a link, or the address after joining) leads to the
// role's first screen. Until the status is known (at start) the shell decides.
router.beforeEach((to) => {
  if (!state.status) return true
  const role = state.status.community ? state.status.role : null
  return allowedFor(to.path, role) ? true : homeFor(role)
})
