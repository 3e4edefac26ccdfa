// An async function leaves a rejected promise behind.
module.exports = async function () {
    Promise.reject(new Error('$$$ERROR$$$'));
    return { applications: [] };
};
