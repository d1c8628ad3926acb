import { createRouter, createWebHashHistory } from 'vue-router'

export const router = createRouter({
  history: createWebHashHistory(),
  routes: [
    { path: '/', redirect: '/overview' },
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
