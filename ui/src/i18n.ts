// Every text of the UI, in Simplified Chinese (the default) and English. Both are complete:
// tests/i18n.test.ts checks that they have the same keys.
import { createI18n } from 'vue-i18n'

export const zh = {
  app: { name: '邻里', tagline: '社区工作 · 离线优先' },
  nav: {
    overview: '概览', roster: '实有人口', visits: '入户走访', tasks: '巡查任务', requests: '居民诉求', board: '互助公告', settings: '设置',
    back: '返回',
  },
  common: {
    save: '保存', cancel: '取消', confirm: '确定', edit: '修改', add: '新增', search: '搜索',
    loading: '加载中…', none: '暂无', all: '全部', yes: '是', no: '否', language: '语言',
    unsynced: '未同步', required: '必填', saved: '已保存', unchanged: '没有变化', close: '关闭',
    user: '使用人', households: '户', people: '人',
  },
  welcome: {
    title: '欢迎使用邻里', subtitle: '为这台设备选择一个开始方式',
    create: '创建社区', createHint: '第一台设备：创建社区并成为社区工作人员',
    join: '加入社区', joinHint: '输入社区工作人员给你的邀请码',
    demo: '试用演示社区', demoHint: '2000 户的演示数据，随时可以体验',
    name: '社区名称', street: '所属街道', user: '你的姓名', code: '邀请码', working: '正在准备…',
  },
  roles: { staff: '社区工作人员', grid: '网格员', owners: '业委会成员' },
  draft: { restored: '已恢复上次未保存的内容', discard: '舍弃草稿', has: '（有草稿）' },
  sync: {
    unknown: '同步状态未知', noRelay: '未设置中继（仅本机）', syncing: '正在同步…',
    offline: '离线，稍后重试', failed: '同步失败，稍后重试', never: '尚未同步',
    synced: '已同步（{ago}）', live: '已连接，实时同步', justNow: '刚刚', minutesAgo: '{n} 分钟前', waiting: '{n} 项待同步',
    now: '立即同步', relay: '街道中继地址', setRelay: '保存中继', lastError: '最近错误', lastSynced: '上次同步',
    setAside: '{n} 份数据无法解读，已搁置',
  },
  overview: {
    title: '社区概览', households: '户数', people: '实有人口', openRequests: '未结诉求',
    overdue: '超期诉求', byTag: '重点人群', visitsByGrid: '本月走访（按网格）', visited: '已走访',
    notVisited: '未走访', requestsByState: '诉求状态', tasksByGrid: '巡查任务进度（按网格）',
    tasksDone: '已完成', tasksOpen: '未完成',
  },
  roster: {
    title: '实有人口', searchHint: '姓名、拼音首字母、证件或电话后四位、地址', compounds: '小区楼栋',
    building: '{b}栋', unit: '{u}单元', room: '室', head: '户主', members: '在住人数',
    tags: '重点人群', lastVisit: '最近走访', address: '地址', grid: '网格', addHousehold: '新增住户',
    results: '搜索结果', noResults: '没有找到', matched: '匹配', count: '共 {n} 户', open: '查看',
  },
  matched: { name: '姓名', initials: '拼音首字母', id_number: '证件后四位', phone: '电话后四位', address: '地址' },
  household: {
    title: '住户', members: '家庭成员', visits: '走访记录', recordVisit: '记录走访',
    reveal: '查看完整', revealed: '已查看（已记录日志）', idNumber: '证件号码', phone: '联系电话',
    birth: '出生日期', relation: '与户主关系', residence: '户籍类型', moveOut: '迁出',
    deceased: '死亡', movedOut: '已迁出 {day}', diedOn: '已故 {day}', confirmMoveOut: '确认 {name} 已迁出？',
    confirmDeceased: '确认登记 {name} 死亡？', editPhone: '修改电话', editTags: '修改重点人群',
    area: '面积（㎡）', tenure: '房屋状况', newRequest: '登记诉求', noVisits: '还没有走访记录',
    addMember: '新增成员', editInfo: '修改信息', field: '项目', value: '新的内容',
    makeHead: '设为户主', confirmHead: '将 {name} 设为户主？原户主的关系将改为“其他”。',
    headFirst: '户主迁出或死亡前，请先将其他在住成员设为户主',
  },
  person: {
    household: '所在住户', places: '居住记录', movedIn: '{day} 迁入', since: '{day} 起', present: '在住',
    moveTo: '迁往本社区其他住户', target: '迁入住户', targetHint: '输入地址或姓名查找住户',
    relation: '与新户主关系', moved: '已迁往 {address}', reveals: '本机查看记录',
    revealed: '{user} 查看了{field}', noReveals: '本机没有查看记录', age: '{n} 岁',
  },
  field: { name: '姓名', relation: '与户主关系', residence: '户籍类型', ethnicity: '民族', workplace: '工作单位', notes: '备注', id_number: '证件号码' },
  add: {
    title: '新增住户', compound: '小区', building: '楼栋', unit: '单元', room: '房号', grid: '网格',
    headName: '户主姓名', gender: '性别', birth: '出生日期', idType: '证件类型', idNumber: '证件号码',
    phone: '联系电话', tenure: '房屋状况', area: '面积（㎡）', residence: '户籍类型', tags: '重点人群',
  },
  visit: {
    title: '入户走访', pick: '选择楼栋', next: '下一户', remaining: '本月未走访 {n} 户',
    allDone: '本楼栋本月已全部走访', method: '走访方式', outcome: '走访结果', retryOn: '再次走访日期',
    followUp: '重点人群跟进', notes: '备注', save: '保存走访', saved: '走访已保存', skip: '跳过',
    household: '当前住户', people: '人员变动', noChange: '无变化',
  },
  method: { in_person: '入户', phone: '电话', wechat: '微信' },
  outcome: { done: '完成', not_home: '未遇' },
  requests: {
    title: '居民诉求', new: '登记诉求', onlyOpen: '只看未结', onlyOverdue: '只看超期', overdueBadge: '{n} 件诉求已超期',
    state: '状态', created: '登记时间', deadline: '办理期限', category: '类别', titleField: '诉求内容',
    description: '详细描述', reporter: '反映人', household: '相关住户', left: '剩余 {span}', onTime: '按期办结', settledLate: '超期 {span}办结',
    lateBy: '已超期 {span}', overdue: '超期', steps: '办理过程', move: '办理', reason: '原因或说明',
    reasonRequired: '此操作需要填写原因', conflictTitle: '两台设备对此诉求做了不同处理',
    conflictHint: '请选择保留哪一个处理结果；两条记录都会保留在历史中。', keep: '保留此结果',
    satisfaction: '满意度', rate: '评价', remind: '催办', reminded: '已催办', events: '催办与备注',
    empty: '没有诉求',
  },
  state: {
    reported: '上报', accepted: '受理', dispatched: '派遣', in_progress: '处置中',
    done: '办结待核查', verified: '已核查', closed: '结案', rejected: '不予受理', returned: '退回',
    reopened: '重启', conflict: '有冲突',
  },
  tasks: {
    title: '巡查任务', new: '新建任务', template: '检查模板', due: '完成期限', assignee: '负责人',
    progress: '进度', overdue: '已过期', pass: '合格', fail: '不合格', note: '情况说明',
    toRequest: '转为诉求', openRequest: '查看诉求', empty: '没有巡查任务', items: '检查项',
  },
  taskStatus: { open: '待办', in_progress: '进行中', done: '已完成' },
  board: {
    help: '邻里互助', notices: '公告', newPost: '发布互助', newNotice: '发布公告', offer: '提供帮助',
    request: '求助', title: '标题', body: '内容', reply: '回复', send: '发送', claim: '认领', done: '已完成',
    withdraw: '撤回', claimedBy: '认领人 {name}', receipts: '需要已读回执', confirmed: '已读 {n} / {total} 户',
    confirmFor: '登记住户已读', household: '住户地址或成员姓名', empty: '暂无内容',
  },
  postStatus: { open: '待认领', claimed: '已认领', done: '已完成', withdrawn: '已撤回' },
  satisfaction: { satisfied: '满意', fair: '基本满意', dissatisfied: '不满意' },
  tenure: { owner_occupied: '自住', rented: '出租', empty: '空置' },
  relation: { head: '户主', spouse: '配偶', child: '子女', parent: '父母', grandchild: '孙子女', other: '其他', tenant: '租户' },
  gender: { male: '男', female: '女' },
  residence: { registered: '户籍', floating: '流动', staying: '寄住' },
  idType: {
    resident_id: '居民身份证', passport: '护照', hmt_permit: '港澳台居民居住证',
    foreign_permanent: '外国人永久居留身份证', other: '其他证件',
  },
  tag: { 独居老人: '独居老人', 残疾人: '残疾人', 低保: '低保', 退役军人: '退役军人', 流动人口: '流动人口', 重点关注: '重点关注' },
  reminders: {
    title: '诉求提醒', overdue: '{n} 件已超期', dueSoon: '{n} 件即将到期', and: '，', more: ' 等',
  },
  settings: {
    title: '设置', device: '本设备', role: '角色', dataDir: '数据目录', invite: '邀请新设备',
    inviteRole: '角色', inviteGrids: '网格', makeInvite: '生成邀请码', inviteHint: '邀请码包含密钥，只出示一次。',
    peers: '附近设备直连', serve: '允许附近设备与本机同步', ticket: '本机连接码（请对方扫码或输入）',
    peerTicket: '对方的连接码', syncPeer: '与该设备同步', peerDone: '已与 {peer} 同步：发送 {sent} 项，收到 {received} 项',
    known: '同步过的设备', knownHint: '它们在附近并允许同步时，本机会在后台自动与它们同步。',
    lastSynced: '上次同步 {time}', notReached: '最近未连上', forget: '忘记',
    serveHint: '打开后，本机在所在局域网（办公室 Wi-Fi、手机热点）中公告自己，并自动与同一网络中同样打开此项的本社区设备同步，无需连接码。',
    nearby: '在附近', nearbyDevice: '本社区设备 {key}', devices: '设备',
    asideTitle: '无法解读的数据', asideHint: '下列数据本机收到后无法解读，已搁置；同步照常进行，其余数据没有丢失。可能是某台设备出了故障或被人篡改。',
    asideRow: '设备 {sender} 发送了无法解读的数据（{scope}，{time}，{bytes} 字节）',
    asideScopeAll: '全社区', asideDrop: '让中继删除这些数据', asideDropped: '中继已删除 {n} 份数据',
    asideConfirm: '让中继删除这 {n} 份无法解读的数据？删除后任何设备都不会再收到它们。',
  },
  time: { hours: '{n} 小时', days: '{n} 天' },
  error: {
    no_community: '这台设备还没有社区', invalid: '输入有误', forbidden: '没有权限', not_found: '找不到记录',
    conflict: '有冲突，请先处理', step: '不能这样办理', offline: '无法连接', refused: '被拒绝',
    store: '存储错误', storage_full: '存储空间已满，本次修改没有保存（腾出空间后重试）', sync: '同步错误', invite: '邀请码无效', io: '文件错误', has_community: '已加入社区', internal: '程序错误',
  },
}

export type Messages = typeof zh

export const en: Messages = {
  app: { name: 'Linli', tagline: 'Community work, offline first' },
  nav: { overview: 'Overview', roster: 'Residents', visits: 'Visits', tasks: 'Inspections', requests: 'Requests', board: 'Board', settings: 'Settings', back: 'Back' },
  common: {
    save: 'Save', cancel: 'Cancel', confirm: 'OK', edit: 'Edit', add: 'Add', search: 'Search',
    loading: 'Loading…', none: 'None', all: 'All', yes: 'Yes', no: 'No', language: 'Language',
    unsynced: 'Not yet synced', required: 'Required', saved: 'Saved', unchanged: 'Nothing changed', close: 'Close',
    user: 'User', households: 'households', people: 'people',
  },
  welcome: {
    title: 'Welcome to Linli', subtitle: 'Choose how this device starts',
    create: 'Create a community', createHint: 'The first device: create the community and become its staff',
    join: 'Join a community', joinHint: 'Enter the invitation code the committee staff gave you',
    demo: 'Try the demo community', demoHint: 'Demo data of 2,000 households, to explore',
    name: 'Community name', street: 'Street office', user: 'Your name', code: 'Invitation code', working: 'Preparing…',
  },
  roles: { staff: 'Committee staff', grid: 'Grid worker', owners: "Owners' committee" },
  draft: { restored: 'Restored what was typed and not saved', discard: 'Discard draft', has: ' (draft)' },
  sync: {
    unknown: 'Sync status unknown', noRelay: 'No relay set (this device only)', syncing: 'Syncing…',
    offline: 'Offline, retrying later', failed: 'Sync failed, retrying later', never: 'Not synced yet',
    synced: 'Synced ({ago})', live: 'Connected, live', justNow: 'just now', minutesAgo: '{n} min ago', waiting: '{n} waiting',
    now: 'Sync now', relay: "Street office's relay", setRelay: 'Save relay', lastError: 'Last error', lastSynced: 'Last synced',
    setAside: '{n} unreadable, set aside',
  },
  overview: {
    title: 'Community overview', households: 'Households', people: 'Residents', openRequests: 'Open requests',
    overdue: 'Overdue requests', byTag: 'People needing attention', visitsByGrid: 'Visits this month (by grid)',
    visited: 'Visited', notVisited: 'Not visited', requestsByState: 'Requests by state',
    tasksByGrid: 'Inspection tasks (by grid)', tasksDone: 'Done', tasksOpen: 'Not done',
  },
  roster: {
    title: 'Residents', searchHint: 'Name, pinyin initials, last 4 of ID or phone, address', compounds: 'Compounds',
    building: 'Bldg {b}', unit: 'Unit {u}', room: 'Room', head: 'Head', members: 'Living here',
    tags: 'Attention', lastVisit: 'Last visit', address: 'Address', grid: 'Grid', addHousehold: 'Add household',
    results: 'Search results', noResults: 'Nothing found', matched: 'Matched', count: '{n} households', open: 'Open',
  },
  matched: { name: 'name', initials: 'pinyin initials', id_number: 'last 4 of ID', phone: 'last 4 of phone', address: 'address' },
  household: {
    title: 'Household', members: 'Members', visits: 'Visits', recordVisit: 'Record a visit',
    reveal: 'Show in full', revealed: 'Shown (logged)', idNumber: 'ID number', phone: 'Phone',
    birth: 'Born', relation: 'Relation to head', residence: 'Residence', moveOut: 'Moved out',
    deceased: 'Deceased', movedOut: 'Moved out {day}', diedOn: 'Died {day}', confirmMoveOut: 'Confirm that {name} moved out?',
    confirmDeceased: 'Record the death of {name}?', editPhone: 'Change phone', editTags: 'Change attention tags',
    area: 'Area (m²)', tenure: 'Tenure', newRequest: 'Report a request', noVisits: 'No visits yet',
    addMember: 'Add a member', editInfo: 'Edit details', field: 'Field', value: 'New value',
    makeHead: 'Make head', confirmHead: 'Make {name} the head of household? The former head becomes "other".',
    headFirst: 'Before the head moves out or dies, make another member who lives here the head',
  },
  person: {
    household: 'Household', places: 'Where they have lived', movedIn: 'moved in {day}', since: 'since {day}', present: 'Lives here',
    moveTo: 'Move to another household here', target: 'Moving into', targetHint: 'Type an address or a name to find the household',
    relation: 'Relation to the new head', moved: 'Moved to {address}', reveals: 'Shown in full on this device',
    revealed: '{user} showed the {field}', noReveals: 'Not shown in full on this device', age: '{n} years',
  },
  field: { name: 'Name', relation: 'Relation to head', residence: 'Residence', ethnicity: 'Ethnicity', workplace: 'Workplace', notes: 'Notes', id_number: 'ID number' },
  add: {
    title: 'Add household', compound: 'Compound', building: 'Building', unit: 'Unit', room: 'Room', grid: 'Grid',
    headName: "Head's name", gender: 'Gender', birth: 'Birth date', idType: 'ID type', idNumber: 'ID number',
    phone: 'Phone', tenure: 'Tenure', area: 'Area (m²)', residence: 'Residence', tags: 'Attention tags',
  },
  visit: {
    title: 'Door-to-door visits', pick: 'Choose a building', next: 'Next household', remaining: '{n} not visited this month',
    allDone: 'Every household of this building was visited this month', method: 'Method', outcome: 'Outcome',
    retryOn: 'Try again on', followUp: 'Follow-up of attention tags', notes: 'Notes', save: 'Save visit',
    saved: 'Visit saved', skip: 'Skip', household: 'Household', people: 'Changes to people', noChange: 'No change',
  },
  method: { in_person: 'In person', phone: 'Phone', wechat: 'WeChat' },
  outcome: { done: 'Done', not_home: 'Nobody home' },
  requests: {
    title: 'Service requests', new: 'Report a request', onlyOpen: 'Open only', onlyOverdue: 'Overdue only', overdueBadge: '{n} requests overdue',
    state: 'State', created: 'Reported', deadline: 'Deadline', category: 'Category', titleField: 'Request',
    description: 'Details', reporter: 'Reported by', household: 'Household', left: '{span} left', onTime: 'settled on time', settledLate: 'settled {span} late',
    lateBy: '{span} overdue', overdue: 'Overdue', steps: 'Steps', move: 'Move to', reason: 'Reason or note',
    reasonRequired: 'This step needs a reason', conflictTitle: 'Two devices moved this request differently',
    conflictHint: 'Choose the outcome to keep; both steps stay in the history.', keep: 'Keep this',
    satisfaction: 'Satisfaction', rate: 'Rate', remind: 'Remind', reminded: 'Reminder sent', events: 'Reminders and notes',
    empty: 'No requests',
  },
  state: {
    reported: 'Reported', accepted: 'Accepted', dispatched: 'Dispatched', in_progress: 'In progress',
    done: 'Done, to verify', verified: 'Verified', closed: 'Closed', rejected: 'Rejected', returned: 'Returned',
    reopened: 'Reopened', conflict: 'In conflict',
  },
  tasks: {
    title: 'Inspection tasks', new: 'New task', template: 'Checklist template', due: 'Due', assignee: 'Assigned to',
    progress: 'Progress', overdue: 'Overdue', pass: 'Pass', fail: 'Fail', note: 'Note',
    toRequest: 'Turn into a request', openRequest: 'Open the request', empty: 'No inspection tasks', items: 'Checklist',
  },
  taskStatus: { open: 'Open', in_progress: 'In progress', done: 'Done' },
  board: {
    help: 'Neighbour help', notices: 'Notices', newPost: 'Post', newNotice: 'Publish a notice', offer: 'Offer help',
    request: 'Ask for help', title: 'Title', body: 'Text', reply: 'Reply', send: 'Send', claim: 'Claim', done: 'Done',
    withdraw: 'Withdraw', claimedBy: 'Claimed by {name}', receipts: 'Ask for read confirmations',
    confirmed: 'Read by {n} of {total} households', confirmFor: 'Record that a household read it',
    household: 'Household address or member name', empty: 'Nothing yet',
  },
  postStatus: { open: 'Open', claimed: 'Claimed', done: 'Done', withdrawn: 'Withdrawn' },
  satisfaction: { satisfied: 'Satisfied', fair: 'Fairly satisfied', dissatisfied: 'Dissatisfied' },
  tenure: { owner_occupied: 'Owner-occupied', rented: 'Rented', empty: 'Empty' },
  relation: { head: 'Head', spouse: 'Spouse', child: 'Child', parent: 'Parent', grandchild: 'Grandchild', other: 'Other', tenant: 'Tenant' },
  gender: { male: 'Male', female: 'Female' },
  residence: { registered: 'Registered', floating: 'Floating', staying: 'Staying' },
  idType: {
    resident_id: 'Resident ID card', passport: 'Passport', hmt_permit: 'HK/Macao/Taiwan residence permit',
    foreign_permanent: "Foreigner's permanent residence ID", other: 'Other',
  },
  tag: {
    独居老人: 'Elderly living alone', 残疾人: 'Disabled', 低保: 'Subsistence allowance', 退役军人: 'Veteran',
    流动人口: 'Floating population', 重点关注: 'Under attention',
  },
  reminders: {
    title: 'Request reminders', overdue: '{n} overdue', dueSoon: '{n} due soon', and: ', ', more: ' and more',
  },
  settings: {
    title: 'Settings', device: 'This device', role: 'Role', dataDir: 'Data directory', invite: 'Invite a device',
    inviteRole: 'Role', inviteGrids: 'Grids', makeInvite: 'Make an invitation',
    inviteHint: 'The code carries keys: show it once.',
    peers: 'Nearby devices', serve: 'Let nearby devices sync with this one', ticket: "This device's code (scan or type it on the other device)",
    peerTicket: "The other device's code", syncPeer: 'Sync with that device', peerDone: 'Synced with {peer}: sent {sent}, received {received}',
    known: 'Devices synced with before', knownHint: 'When one is nearby and lets devices sync, this one syncs with it in the background.',
    lastSynced: 'last synced {time}', notReached: 'not reached lately', forget: 'Forget',
    serveHint: 'While on, this device announces itself on the local network (office Wi-Fi, a phone hotspot) and syncs by itself with the devices of this community there that have this on too; no code needed.',
    nearby: 'Nearby', nearbyDevice: 'Device of this community {key}', devices: 'Devices',
    asideTitle: 'Data that could not be read', asideHint: 'This device received the data below and could not read it, so it was set aside; syncing goes on and nothing else was lost. A device may be faulty, or the data tampered with.',
    asideRow: 'Device {sender} sent data that could not be read ({scope}, {time}, {bytes} bytes)',
    asideScopeAll: 'whole community', asideDrop: 'Have the relay delete this data', asideDropped: 'The relay deleted {n} item(s)',
    asideConfirm: 'Have the relay delete these {n} unreadable item(s)? No device will receive them again.',
  },
  time: { hours: '{n} h', days: '{n} days' },
  error: {
    no_community: 'This device has no community yet', invalid: 'Invalid input', forbidden: 'Not allowed',
    not_found: 'Not found', conflict: 'In conflict: settle it first', step: 'This step is not allowed',
    offline: 'Cannot connect', refused: 'Refused', store: 'Storage error',
    storage_full: 'Storage is full: this change was not saved (free some space and try again)', sync: 'Sync error',
    invite: 'Invalid invitation code', io: 'File error', has_community: 'Already in a community', internal: 'Internal error',
  },
}

const saved = typeof localStorage !== 'undefined' ? localStorage.getItem('linli.locale') : null

export const i18n = createI18n({
  legacy: false,
  locale: saved === 'en' ? 'en' : 'zh-CN',
  fallbackLocale: 'zh-CN',
  messages: { 'zh-CN': zh, en },
})

export function setLocale(locale: 'zh-CN' | 'en') {
  i18n.global.locale.value = locale
  localStorage.setItem('linli.locale', locale)
  document.documentElement.lang = locale
}
