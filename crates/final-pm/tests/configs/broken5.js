// A valid result first, then an error in a later tick: the error wins.
module.exports = async function () {
    setTimeout(() => {
        throw new Error('$$$ERROR$$$');
    }, 10);
    return { applications: [{ name: 'app', 'ready-on': 'message' }] };
};
