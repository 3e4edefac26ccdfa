// A synchronous function leaves a rejected promise behind.
module.exports = function () {
    Promise.reject(new Error('$$$ERROR$$$'));
    return { applications: [] };
};
